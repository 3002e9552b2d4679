"""How many events per second the pure call model handles (no I/O).

Run: .venv/bin/python -m bench.model_throughput [--calls 2000] [--concurrent 50]
Prints figures; it is not a test. The daemon's ceiling is ARI and PostgreSQL round trips, not
this, but a regression here would show up in every call.

The calls are a mix, as bench.load's: of every ten, six plain Stasis calls (announcement,
dial, answer, talk, hang-up), one blind transfer, one 302 forward, and two hook-mode calls (the
dialplan keeps them; a snoop records each leg, one blind transfer). Each call is a script that
reads the ids it needs from the model's commands, as a simulator would; the scripts are run once
to record the event order, then that order is timed through a fresh state. The model runs with
the built-in policy (what a daemon with no policy_file decides and announces) and each call has
its own caller, so each new number's parse and jurisdiction is in the figure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Generator
from typing import Any

from recorder.ari import events as ev
from recorder.common.numbers import normalise
from recorder.model import commands as cmd
from recorder.model.calls import step
from recorder.model.inputs import HookCalled, HookPrompted, RecordingFiled
from recorder.model.settings import CallSettings
from recorder.model.state import ModelState
from recorder.policy import load_policy
from recorder.policy.jurisdiction import _place_of, load_geocoder
from tests.harness import builders as b

# A call's script: yields its events, is sent the commands each one produced.
Script = Generator[ev.Event, list[cmd.Command], None]


class Seen:
    """The commands a script's call produced so far."""

    def __init__(self) -> None:
        self.commands: list[cmd.Command] = []

    def add(self, out: list[cmd.Command]) -> None:
        self.commands += out

    def last(self, kind: type[Any]) -> Any:
        return [c for c in self.commands if isinstance(c, kind)][-1]


def _number(n: int) -> str:
    """Call n's caller: distinct numbers, as bench.load's (a new one costs its parse and
    jurisdiction once)."""
    return f"+1415555{n % 10000:04d}"


def filed(t: float, name: str) -> RecordingFiled:
    return RecordingFiled(timestamp=b.at(t), asterisk_id=b.AST, name=name, path=f"/a/{name}",
                          sha256="0" * 64, bytes=1, duration_ms=55_000)


def announced(n: int, t0: float, seen: Seen, target: str) -> Script:
    """An inbound Stasis call up to its announcement's end: the target is being dialled."""
    caller = f"{n}.1"
    seen.add((yield b.stasis_start(t0, b.chan(caller, "Ring", number=_number(n)),
                                   "inbound", target)))
    bridge = seen.last(cmd.CreateBridge).bridge_id
    seen.add((yield b.entered(t0 + 0.01, bridge, caller)))
    seen.add((yield b.playback_finished(t0 + 3, seen.last(cmd.Play).playback_id)))


def hung_up(n: int, t0: float, seen: Seen, callee: str) -> Script:
    """The caller hangs up at 60 s; both leave, the recording ends and is filed."""
    caller = f"{n}.1"
    bridge, rec = seen.last(cmd.CreateBridge).bridge_id, seen.last(cmd.StartRecording).name
    yield b.hangup_request(t0 + 60, caller)
    yield b.left(t0 + 60.01, bridge, caller)
    yield b.stasis_end(t0 + 60.02, caller)
    yield b.left(t0 + 60.03, bridge, callee)
    yield b.stasis_end(t0 + 60.04, callee)
    yield b.recording(t0 + 60.05, "finished", rec)
    yield filed(t0 + 61, rec)


def bridged(n: int, t0: float, seen: Seen) -> Script:
    """An inbound Stasis call up to both parties bridged and recorded (its caller, callee, call
    id, bridge and recording are left on `seen`)."""
    yield from announced(n, t0, seen, "201")
    bridge = seen.last(cmd.CreateBridge).bridge_id
    callee = seen.last(cmd.CreateChannel).channel_id
    call_id = seen.last(cmd.SaveCall).call_id
    seen.add((yield b.stasis_start(t0 + 3.01, b.chan(callee, "Down"), "dialed", call_id)))
    seen.add((yield b.dial(t0 + 3.02, callee, "RINGING")))
    seen.add((yield b.dial(t0 + 5, callee, "ANSWER")))
    seen.add((yield b.recording(t0 + 5.01, "started", seen.last(cmd.StartRecording).name)))
    seen.add((yield b.entered(t0 + 5.02, bridge, callee)))


def plain(n: int, t0: float) -> Script:
    seen = Seen()
    yield from bridged(n, t0, seen)
    yield from hung_up(n, t0, seen, seen.last(cmd.CreateChannel).channel_id)


def blind_transfer(n: int, t0: float) -> Script:
    """The callee sends the caller to 300 (the event order of the real capture)."""
    seen = Seen()
    yield from bridged(n, t0, seen)
    caller, callee = f"{n}.1", seen.last(cmd.CreateChannel).channel_id
    call_id = seen.last(cmd.SaveCall).call_id
    bridge, rec = seen.last(cmd.CreateBridge).bridge_id, seen.last(cmd.StartRecording).name
    base, l1, l2 = f"Local/300@transfer-target-{n:08x}", f"{n}.5", f"{n}.6"
    t = t0 + 20
    yield ev.ChannelUnhold(timestamp=b.at(t), asterisk_id=b.AST, channel=b.chan(callee))
    seen.add((yield b.stasis_start(t, b.chan(l2, "Ring", name=f"{base};2"), "transfer", "300")))
    seen.add((yield ev.StasisStart(timestamp=b.at(t), asterisk_id=b.AST,
                                   channel=b.chan(l1, "Down", name=f"{base};1"), args=(),
                                   replace_channel=b.chan(callee))))
    seen.add((yield b.left(t, bridge, callee)))
    seen.add((yield b.entered(t, bridge, l1)))
    seen.add((yield ev.BridgeBlindTransfer(
        timestamp=b.at(t), asterisk_id=b.AST, channel=b.chan(callee), exten="300",
        context="transfer-target", result="Success", is_external=True,
        replace_channel=b.chan(l1, name=f"{base};1"))))
    target, bridge2 = seen.last(cmd.CreateChannel).channel_id, seen.last(cmd.CreateBridge).bridge_id
    yield b.hangup_request(t + 0.2, callee)
    yield b.stasis_end(t + 0.21, callee)
    yield b.stasis_start(t + 0.3, b.chan(target, "Down"), "dialed", call_id)
    yield b.dial(t + 1, target, "ANSWER")
    yield b.entered(t + 1.01, bridge2, l2)
    yield b.entered(t + 1.02, bridge2, target)
    yield b.hangup_request(t0 + 60, caller)
    for i, leg in enumerate([caller, l1, l2, target]):
        yield b.stasis_end(t0 + 60.1 + i / 100, leg)
    yield b.recording(t0 + 60.2, "finished", rec)
    yield filed(t0 + 61, rec)


def forwarded(n: int, t0: float) -> Script:
    """The dialled phone answers 302 to 300 (the create-and-dial form of the real capture)."""
    seen = Seen()
    yield from announced(n, t0, seen, "400")
    bridge = seen.last(cmd.CreateBridge).bridge_id
    first, call_id = seen.last(cmd.CreateChannel).channel_id, seen.last(cmd.SaveCall).call_id
    yield b.stasis_start(t0 + 3.01, b.chan(first, "Down"), "dialed", call_id)
    yield b.dial(t0 + 3.02, first, "")
    yield b.hangup_request(t0 + 3.03, first, cause=23)
    for t in (3.04, 3.041, 3.042):
        seen.add((yield b.dial(t0 + t, first, "CANCEL", forward="300")))
    yield b.stasis_end(t0 + 3.05, first)
    yield b.destroyed(t0 + 3.051, first, cause=23)
    second = seen.last(cmd.CreateChannel).channel_id
    seen.add((yield b.stasis_start(t0 + 3.06, b.chan(second, "Down"), "dialed", call_id)))
    seen.add((yield b.dial(t0 + 5, second, "ANSWER")))
    rec = seen.last(cmd.StartRecording).name
    yield b.recording(t0 + 5.01, "started", rec)
    yield b.entered(t0 + 5.02, bridge, second)
    yield from hung_up(n, t0, seen, second)


def hooked(n: int, t0: float) -> Script:
    """A hook-mode call: A dials B, B sends A to C (blind), each leg recorded by its snoop."""
    seen = Seen()
    a, b_, c = f"{n}.1", f"{n}.2", f"{n}.3"

    def dial(t: float, peer: str, status: str) -> ev.Dial:
        return ev.Dial(timestamp=b.at(t0 + t), asterisk_id=b.AST, caller=b.chan(a),
                       peer=b.chan(peer, "Ring"), dialstatus=status)

    def snooped(t: float) -> Script:
        snoop = seen.last(cmd.Snoop).snoop_id
        seen.add((yield b.stasis_start(t0 + t, b.chan(snoop), "snoop")))
        seen.add((yield b.recording(t0 + t + 0.01, "started", seen.last(cmd.RecordChannel).name)))

    def joined(t: float, bridge: str, peer: str) -> Script:
        """`peer` answers and is bridged with A at `t`; its snoop records."""
        yield dial(t, peer, "ANSWER")
        yield b.entered(t0 + t, bridge, a)
        seen.add((yield b.entered(t0 + t, bridge, peer)))
        yield from snooped(t + 0.01)

    seen.add((yield HookCalled(timestamp=b.at(t0), asterisk_id=b.AST, session=f"s{n}",
                               hook="record", channel=b.chan(a, number=_number(n)),
                               args=("inbound", "201"), exten="201")))
    replies = [c for c in seen.commands if isinstance(c, cmd.HookReply)]
    if replies and replies[-1].prompts and not replies[-1].final:  # the policy's announcement
        seen.add((yield HookPrompted(timestamp=b.at(t0 + 0.005), asterisk_id=b.AST,
                                     session=f"s{n}", channel_id=a)))
    yield from snooped(0.01)
    s1 = seen.last(cmd.RecordChannel).name
    yield dial(1, b_, "")
    yield dial(1.1, b_, "RINGING")
    yield from joined(2, f"x{n}", b_)
    s2 = seen.last(cmd.RecordChannel).name
    yield ev.BridgeBlindTransfer(timestamp=b.at(t0 + 5), asterisk_id=b.AST, channel=b.chan(b_),
                                 exten="300", context="transfer", result="Success",
                                 is_external=True, transferee=b.chan(a))
    yield b.left(t0 + 5, f"x{n}", a)
    yield b.left(t0 + 5, f"x{n}", b_)
    yield b.destroyed(t0 + 5.2, b_)
    yield b.recording(t0 + 5.2, "finished", s2)
    yield dial(5.5, c, "")
    yield from joined(7, f"y{n}", c)
    s3 = seen.last(cmd.RecordChannel).name
    yield b.destroyed(t0 + 60, c)
    yield b.destroyed(t0 + 60, a)
    for name in (s3, s1):
        yield b.recording(t0 + 60, "finished", name)
    for name in (s1, s2, s3):
        yield filed(t0 + 60.1, name)


MIX: list[Callable[[int, float], Script]] = [plain, plain, plain, plain, plain, plain,
                                             blind_transfer, forwarded, hooked, hooked]


def recorded(calls: int, concurrent: int, settings: CallSettings) -> list[ev.Event]:
    """Every call's events, `concurrent` calls at a time interleaved event by event (the state
    holds that many at once, as on a busy PBX), in the order the scripts made them."""
    state, order = ModelState(), []
    for start in range(0, calls, concurrent):
        t0 = (start // concurrent) * 100.0
        group = range(start, min(calls, start + concurrent))
        running = [MIX[n % len(MIX)](1_800_000_000 + n, t0) for n in group]
        pending: list[tuple[Script, list[cmd.Command] | None]] = [(s, None) for s in running]
        while pending:
            after: list[tuple[Script, list[cmd.Command] | None]] = []
            for script, out in pending:
                try:
                    event = next(script) if out is None else script.send(out)
                except StopIteration:
                    continue
                state, got = step(state, event, settings)
                order.append(event)
                after.append((script, got))
            pending = after
    assert not state.calls, f"{len(state.calls)} calls did not end"
    return order


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=50)
    args = ap.parse_args()
    load_geocoder()  # as the daemon does at start: its first caller does not pay for it
    settings = CallSettings(policy=load_policy(None))  # a daemon's with no policy_file
    order = recorded(args.calls, args.concurrent, settings)
    # recording the order looked every number up: the timed pass pays each one's parse again
    normalise.cache_clear()
    _place_of.cache_clear()
    state = ModelState()
    commands = 0
    began, cpu_began = time.perf_counter(), time.process_time()
    for event in order:
        state, out = step(state, event, settings)
        commands += len(out)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began  # this process's own: the machine may be shared
    assert not state.calls, "every call should have ended"
    print(
        f"calls={args.calls} concurrent={args.concurrent} events={len(order)} commands={commands}"
    )
    print(
        f"elapsed={elapsed:.3f}s events/s={len(order) / elapsed:,.0f} "
        f"per-call={elapsed / args.calls * 1e3:.3f}ms cpu-per-call={cpu / args.calls * 1e3:.3f}ms"
    )


if __name__ == "__main__":
    main()
