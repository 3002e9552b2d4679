"""The model-test driver. Every model test steps the reducer through `Run.feed` (an event) or
`Run.reconcile` (a reconnect); both end in `Run._stepped`, the one place for a check that must
hold after every step. A Run keeps the state and each command emitted.

Ids are read from those commands (the bridge created, the prompt played, the channel dialled,
the recording started, the snoop asked for), never rebuilt from the model's id scheme.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import UnionType
from typing import Any

from recorder.ari import events as ev
from recorder.db.mapping import call_rows, call_state
from recorder.db.rows import CallRows
from recorder.model import commands as cmd
from recorder.model import snapshot
from recorder.model.calls import step
from recorder.model.reconcile import AriSnapshot, reconcile
from recorder.model.settings import CallSettings
from recorder.model.state import Call, ModelState
from tests.harness import builders as b

SETTINGS = CallSettings(departments={"201": "Intake", "305": "Family Law"})
CALLER = "1700000000.1"


def _known(state: ModelState, c: cmd.Command) -> bool:
    """Whether every id `c` names is one the state's index of its kind gives to `c`'s own call
    (a log line, an event row or an answer to a hook names none)."""
    kinds = (("channel_id", state.by_channel), ("snoop_id", state.by_channel),
             ("bridge_id", state.by_bridge), ("playback_id", state.by_playback),
             ("name", state.by_recording))
    return all(index.get(v) == c.call_id for attr, index in kinds
               if isinstance(v := getattr(c, attr, None), str) and v)


class Run:
    """Feeds events through `step`, keeping the state and every command it produced."""

    def __init__(self, settings: CallSettings = SETTINGS, state: ModelState | None = None) -> None:
        self.state = ModelState() if state is None else state
        self.settings = settings
        self.commands: list[cmd.Command] = []
        self.last: list[cmd.Command] = []
        self.persisted = b.Persisted(self.state)

    def feed(self, event: ev.Event) -> list[cmd.Command]:
        """One step of the reducer; its commands (also kept in `commands`)."""
        before = self.state
        was = _as_stored(before)
        out = self._stepped(*step(self.state, event, self.settings))
        # The state handed in is never changed (recorder.model.state): the writer tells a
        # changed call by comparing the new with the old, and a change made to the old in place
        # would be a snapshot never written.
        assert _as_stored(before) == was, f"{type(event).__name__} changed the state handed in"
        # a step that changed nothing (the same state back) hangs up, logs, answers a hook, or
        # asks only about what the state knows: a request naming anything new would be one a
        # crash could lose
        assert before is not self.state or all(
            isinstance(c, cmd.Log | cmd.Hangup | cmd.HookReply) or _known(before, c)
            for c in out), out
        return out

    def reconcile(self, snap: AriSnapshot, now: datetime) -> list[cmd.Command]:
        """What the daemon does after a reconnect: Asterisk's state, as the events missed."""
        before = self.state
        was = _as_stored(before)
        out = self._stepped(*reconcile(self.state, snap, self.settings, now))
        assert _as_stored(before) == was, "reconcile changed the state handed in"
        return out

    def _stepped(self, state: ModelState, out: list[cmd.Command]) -> list[cmd.Command]:
        """Every step of every model test ends here, with what the model returned; what it
        gave persistence must give back every call's state (`Persisted`)."""
        self.persisted.check(state, out)
        self.state, self.last = state, out
        self.commands.extend(out)
        return out

    def of(self, kind: type[Any] | UnionType, out: list[cmd.Command] | None = None) -> list[Any]:
        """The commands of `kind` (a class, or a union of them) in `out`, or in all so far."""
        return [c for c in (self.commands if out is None else out) if isinstance(c, kind)]

    def saved(self, out: list[cmd.Command] | None = None) -> list[CallRows]:
        """The call's snapshots (its `SaveCall`s in `out`, or in all so far) as the rows the
        daemon stages for them (recorder.db.mapping)."""
        return [call_rows(c.call) for c in self.of(cmd.SaveCall, out)]

    @property
    def call(self) -> Call:
        (call,) = self.state.calls.values()
        return call

    def logs(self, name: str) -> list[cmd.Log]:
        return [c for c in self.of(cmd.Log) if c.event == name]

    def restarted(self) -> Run:
        """What a daemon started after a crash holds: each call as its stored snapshot gives it
        back (the daemon's adoption), and no command sent yet."""
        state = ModelState()
        for call in self.state.calls.values():
            # through JSON text, as the JSONB column keeps it
            stored = json.loads(json.dumps(snapshot.encode(call)))
            state = state.with_call(snapshot.decode(stored))
        return Run(self.settings, state)

    # Ids from the emitted commands: the latest by default, or the n-th (0: the first).

    def bridge(self, n: int = -1) -> str:
        """The bridge of a CreateBridge."""
        return str(self.of(cmd.CreateBridge)[n].bridge_id)

    def playback(self, n: int = -1) -> str:
        """The playback of a Play (a prompt or ringback)."""
        return str(self.of(cmd.Play)[n].playback_id)

    def dialled(self, n: int = -1) -> str:
        """The channel a CreateChannel or Originate made."""
        return str(self.of(cmd.CreateChannel | cmd.Originate)[n].channel_id)

    def recording(self, n: int = -1) -> str:
        """The name of a StartRecording (a bridge) or RecordChannel (a snoop)."""
        return str(self.of(cmd.StartRecording | cmd.RecordChannel)[n].name)

    def snoop(self, n: int = -1) -> str:
        """The snoop channel a Snoop asked for."""
        return str(self.of(cmd.Snoop)[n].snoop_id)


def start_inbound(run: Run, target: str = "201", number: str = "+14155550100") -> str:
    """An inbound call from CALLER to `target`, the caller in its bridge; the call's id."""
    run.feed(b.stasis_start(0, b.chan(CALLER, "Ring", number=number), "inbound", target))
    run.feed(b.entered(0.01, run.bridge(), CALLER))
    return run.call.call_id


def to_dialling(run: Run, target: str = "201") -> tuple[str, str]:
    """An inbound call past its announcement, the callee's channel in the app (not yet ringing):
    the call's id and the callee's channel."""
    call_id = start_inbound(run, target)
    run.feed(b.playback_finished(3, run.playback()))
    callee = run.dialled()
    run.feed(b.stasis_start(3.01, b.chan(callee, "Down"), "dialed", call_id))
    return call_id, callee


def to_bridged(run: Run) -> tuple[str, str, str]:
    """Drive an inbound call to the point where both parties are bridged and recorded: the call's
    id, the callee's channel and the recording's name."""
    call_id, callee = to_dialling(run)
    run.feed(b.dial(3.02, callee, "RINGING"))
    run.feed(b.dial(5, callee, "ANSWER"))
    name = run.recording()
    run.feed(b.recording(5.01, "started", name))
    run.feed(b.entered(5.02, run.bridge(), callee))
    return call_id, callee, name


def _as_stored(state: ModelState) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every call of `state` as its stored snapshot, and the pending Local halves: what a
    step must leave as it found them."""
    return ({k: bytes(call_state(c)) for k, c in state.calls.items()},
            dict(state.pending_locals))
