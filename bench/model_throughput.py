"""How many ARI events per second the pure call model handles (no I/O).

Run: .venv/bin/python -m bench.model_throughput [--calls 2000] [--concurrent 50]
Prints figures; it is not a test. The daemon's ceiling is ARI and PostgreSQL round trips, not
this, but a regression here would show up in every call.
"""

from __future__ import annotations

import argparse
import time

from recorder.ari import events as ev
from recorder.model.calls import step
from recorder.model.inputs import RecordingFiled
from recorder.model.settings import CallSettings
from recorder.model.state import ModelState
from tests.harness import builders as b


def call_events(n: int, t0: float) -> list[ev.Event]:
    caller = f"1700000000.{n}"
    call_id = _call_id(t0, caller)
    callee, bridge, rec = f"{call_id}-l2", f"{call_id}-b1", f"{call_id}-s1"
    return [
        b.stasis_start(t0, b.chan(caller, "Ring", number="+14155550100"), "inbound", "201"),
        b.entered(t0 + 0.01, bridge, caller),
        b.playback_finished(t0 + 3, f"{call_id}-p1"),
        b.stasis_start(t0 + 3.01, b.chan(callee, "Down"), "dialed", call_id),
        b.dial(t0 + 3.02, callee, "RINGING"),
        b.dial(t0 + 5, callee, "ANSWER"),
        b.recording(t0 + 5.01, "started", rec),
        b.entered(t0 + 5.02, bridge, callee),
        b.hangup_request(t0 + 60, caller),
        b.left(t0 + 60.01, bridge, caller),
        b.stasis_end(t0 + 60.02, caller),
        b.left(t0 + 60.03, bridge, callee),
        b.stasis_end(t0 + 60.04, callee),
        b.recording(t0 + 60.05, "finished", rec),
        RecordingFiled(
            timestamp=b.at(t0 + 61),
            name=rec,
            path="/x",
            sha256="0" * 64,
            bytes=1,
            duration_ms=55_000,
        ),
    ]


def _call_id(t0: float, caller: str) -> str:
    from recorder.model.calls import make_call_id

    return make_call_id(b.at(t0), b.AST, caller)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=50)
    args = ap.parse_args()
    settings = CallSettings()
    # Interleave `concurrent` calls so the state holds that many at once, as on a busy PBX.
    streams = [call_events(n, t0=(n // args.concurrent) * 100.0) for n in range(args.calls)]
    order: list[ev.Event] = []
    for start in range(0, args.calls, args.concurrent):
        group = streams[start : start + args.concurrent]
        for i in range(max(len(s) for s in group)):
            order.extend(s[i] for s in group if i < len(s))
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
