"""Call snapshots (calls.state, the journal): the msgspec codec, and snapshots written by the
previous codec ("$dt" tags, tests/data/snapshots_v1.json) or before each mode's data had its own
record (flat) adopted after an upgrade; tests/data/snapshots_v2.json is the form written now."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from recorder.db.mapping import call_rows, call_state, revive
from recorder.model import commands as cmd
from recorder.model.calls import step
from recorder.model.coverage import leg_spans
from recorder.model.inputs import ChannelChecked, ControlRequested, RecordingFiled
from recorder.model.records import CallDecision, HookSession, OnHold, Pause, Prompt, Stay
from recorder.model.settings import CallSettings
from recorder.model.snapshot import decode, encode
from recorder.model.state import CallMode, LegState, ModelState, Phase, RecStatus
from tests.harness import builders as b

OLD: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "snapshots_v1.json").read_text(encoding="utf-8"))
NEW: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "snapshots_v2.json").read_text(encoding="utf-8"))
CALLER, CALLEE = "1700000000.1", "1700000000.2"
ID = "20261125T150000-b5abddca"  # the call's id in every snapshot there
STASIS_CALLEE = "20261125T150000-b5abddca-l2"
SETTINGS = CallSettings()  # the snapshots driven on here were taken without a policy


def at(seconds: float) -> datetime:
    return b.at(seconds)


@pytest.mark.parametrize("name", sorted(OLD))
def test_an_old_snapshot_decodes_to_typed_state_and_round_trips(name: str) -> None:
    call = decode(copy.deepcopy(OLD[name]))
    assert isinstance(call.started_at, datetime) and isinstance(call.phase, Phase)
    assert isinstance(call.mode, CallMode)
    for leg in call.legs.values():
        assert isinstance(leg.state, LegState) and isinstance(leg.started_at, datetime)
        assert all(isinstance(x, Stay) and isinstance(x.entered, datetime) for x in leg.spans)
        assert all(isinstance(x, OnHold) for x in leg.holds)
    assert all(isinstance(p, Pause) and isinstance(p.start, datetime) for p in call.pauses)
    assert all(isinstance(r.status, RecStatus) for r in call.recordings.values())
    assert call.decision is None or isinstance(call.decision, CallDecision)
    assert all(isinstance(p, Prompt) for p in call.prompts.values())
    assert all(isinstance(h, HookSession) for h in call.hook.sessions.values())
    stored = json.loads(json.dumps(encode(call)))  # as PostgreSQL's JSONB keeps it
    assert decode(stored) == call
    assert "$dt" not in json.dumps(stored)


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("stasis_bridged_paused", lambda c: (
            c.phase, c.legs[STASIS_CALLEE].spans[0].entered, c.legs[STASIS_CALLEE].holds,
            c.pauses)),
        ("hook_bridged_paused", lambda c: (
            c.phase, c.mode, len(c.hook.snoops), c.legs[CALLEE].spans, c.pauses)),
        ("hook_callee_prompt", lambda c: (
            c.hook.sessions, c.decision.record if c.decision else None,
            [(p.to, p.opt_out_dtmf, p.at_answer) for p in c.prompts.values()])),
        ("stasis_forwarded", lambda c: ([(j.target, j.via) for j in c.joins], c.phase)),
    ],
)
def test_what_an_old_snapshot_says_is_kept(name: str, facts: Any) -> None:
    expected = {
        "stasis_bridged_paused": (
            "bridged", at(5.02), [OnHold(at(6), at(6.5)), OnHold(at(6.7))],
            [Pause(at(7), None, "pause")]),
        "hook_bridged_paused": ("following", "hook", 2, [Stay("x", at(1))],
                                [Pause(at(3), None, "pause")]),
        "hook_callee_prompt": (
            {"s2": HookSession("answered", CALLEE, "20261125T150000-b5abddca-p2")}, True,
            [("callee", "9", False)]),
        "stasis_forwarded": ([("300", "forward")], "dialing"),
    }[name]
    assert facts(decode(copy.deepcopy(OLD[name]))) == expected


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A v2 call or leg as the msgspec codec wrote it before the per-mode records."""
    out = {k: v for k, v in record.items() if k not in ("stasis", "hook")}
    out.update(record["stasis"])
    out.update({"hook_sessions" if k == "sessions" else k: v for k, v in record["hook"].items()})
    return out


@pytest.mark.parametrize("name", sorted(OLD))
def test_every_form_of_a_snapshot_gives_the_same_call_and_v2_is_written(name: str) -> None:
    call = decode(copy.deepcopy(OLD[name]))
    assert sorted(NEW) == sorted(OLD)
    assert json.loads(json.dumps(encode(call))) == NEW[name]
    assert decode(copy.deepcopy(NEW[name])) == call
    flat = _flat(NEW[name])
    flat["legs"] = {k: _flat(leg) for k, leg in flat["legs"].items()}
    assert "stasis" not in flat and all("hook" not in leg for leg in flat["legs"].values())
    assert decode(flat) == call


@pytest.mark.parametrize(("name", "mode_facts", "expected"), [
    ("hook_bridged_paused", lambda c: (
        sorted(c.hook.snoops.values()), [leg.hook.recording for leg in c.legs.values()],
        c.stasis.bridge_created), ([f"{ID}-s1", f"{ID}-s2"], [f"{ID}-s1", f"{ID}-s2"], False)),
    ("hook_callee_prompt", lambda c: (sorted(c.hook.sessions), c.stasis.current_recording),
     (["s2"], None)),
    ("stasis_bridged_paused", lambda c: (
        c.stasis.bridge_created, c.stasis.current_recording, c.hook.snoops),
     (True, f"{ID}-s1", {})),
    ("stasis_forwarded", lambda c: (
        [(leg.stasis.forwarded_from, leg.stasis.in_stasis) for leg in c.legs.values()],
        c.hook.sessions), ([(None, False), (None, True), (f"{ID}-l2", False)], {})),
])
def test_an_old_snapshot_puts_each_mode_field_in_its_record(
    name: str, mode_facts: Any, expected: Any,
) -> None:
    assert mode_facts(decode(copy.deepcopy(OLD[name]))) == expected


def test_a_pause_stored_before_pauses_had_kinds_is_a_pause() -> None:
    old = copy.deepcopy(OLD["stasis_bridged_paused"])
    old["pauses"] = [[{"$dt": "2026-11-25T15:00:07+00:00"}, None]]
    call = decode(old)
    assert call.pauses == [Pause(at(7), None, "pause")] and call.open_pause("pause") is not None


def test_a_stasis_call_in_flight_is_adopted_from_an_old_snapshot_and_ends() -> None:
    call = decode(copy.deepcopy(OLD["stasis_bridged_paused"]))
    state = ModelState().with_call(call)
    name = next(iter(call.recordings))
    state, out = step(state, ControlRequested(timestamp=at(9), asterisk_id=b.AST, request_id=1,
                                              call_id=call.call_id, action="resume", by="crm"),
                      SETTINGS)
    assert [(c.name, c.pause) for c in out if isinstance(c, cmd.PauseRecording)] == [(name, False)]
    for event in (b.hangup_request(20, CALLER), b.stasis_end(20.01, CALLER),
                  b.stasis_end(20.02, STASIS_CALLEE), b.recording(20.03, "finished", name)):
        state, out = step(state, event, SETTINGS)
    (ending,) = state.calls.values()
    assert ending.phase == "ending" and ending.pauses == [Pause(at(7), at(9), "pause")]
    state, out = step(state, RecordingFiled(timestamp=at(21), name=name, path=f"/a/{name}",
                                            sha256="0" * 64, bytes=16, duration_ms=13_000),
                      SETTINGS)
    assert not state.calls
    final = call_rows([c for c in out if isinstance(c, cmd.SaveCall)][-1].call)
    assert final.call.status == "ended" and final.call.outcome == "answered"
    assert final.call.state is not None and decode(final.call.state).phase == "ended"


def test_a_hooked_call_is_adopted_from_an_old_snapshot_and_its_proof_is_whole() -> None:
    """Hook mode, paused at 3 s by the old daemon: the new one resumes at 5 s, both legs hang
    up at 8 s, and the final snapshot (the call page's) proves 1-8 s talked, 3-5 s not
    recorded on purpose, the rest covered."""
    call = decode(copy.deepcopy(OLD["hook_bridged_paused"]))
    state = ModelState().with_call(call)
    snoop_of = {rec: sid for sid, rec in call.hook.snoops.items()}
    out: list[cmd.Command] = []

    def feed(event: Any) -> list[cmd.Command]:
        nonlocal state
        state, more = step(state, event, SETTINGS)
        out.extend(more)
        return more

    resumed = feed(ControlRequested(timestamp=at(5), asterisk_id=b.AST, request_id=1,
                                    call_id=call.call_id, action="resume", by="crm"))
    assert {(c.name, c.pause) for c in resumed if isinstance(c, cmd.PauseRecording)} == {
        (name, False) for name in call.recordings}
    feed(b.left(8, "x", CALLER))
    feed(b.left(8, "x", CALLEE))
    for name, leg in zip(sorted(call.recordings), (CALLER, CALLEE), strict=True):
        feed(b.recording(8.01, "finished", name))
        feed(b.stasis_end(8.01, snoop_of[name]))
        feed(b.destroyed(8.01, leg))
        feed(ChannelChecked(timestamp=at(8.01), asterisk_id=b.AST, call_id=call.call_id,
                            channel_id=leg, exists=False))
        feed(b.destroyed(8.01, snoop_of[name]))
    for name in call.recordings:
        feed(RecordingFiled(timestamp=at(9), name=name, path=f"/a/{name}", sha256="0" * 64,
                            bytes=16, duration_ms=7000))
    assert not state.calls
    final = call_rows([c for c in out if isinstance(c, cmd.SaveCall)][-1].call).call
    assert final.status == "ended" and final.state is not None
    proofs = leg_spans(decode(json.loads(json.dumps(final.state))))
    for leg in (CALLER, CALLEE):
        p = proofs[leg]
        assert (p.talked, p.unrecorded, p.missing) == ([(at(1), at(8))], [(at(3), at(5))], [])
        assert p.covered == [(at(1), at(3)), (at(5), at(8))]


def test_no_step_changes_the_state_it_was_given() -> None:
    """The per-step copy shares the immutable records and copies every list and map: the
    model bench's calls (Stasis calls plain, transferred and forwarded, hook-mode calls), and
    an adopted hook-mode call through a pause, a resume and its end, each leave every state
    they were handed as it was."""
    from bench.model_throughput import recorded

    hooked = decode(copy.deepcopy(OLD["hook_bridged_paused"]))
    snoop_of = {rec: sid for sid, rec in hooked.hook.snoops.items()}
    events: list[Any] = recorded(10, 10, SETTINGS)
    for t, action in ((4.0, "resume"), (5.0, "pause"), (6.0, "resume")):
        events.append(ControlRequested(timestamp=at(t), asterisk_id=b.AST, request_id=1,
                                       call_id=hooked.call_id, action=action, by="crm"))
    for name, leg in zip(sorted(hooked.recordings), (CALLER, CALLEE), strict=True):
        events += [b.left(8, "x", leg), b.recording(8.01, "finished", name),
                   b.stasis_end(8.01, snoop_of[name]), b.destroyed(8.01, leg),
                   ChannelChecked(timestamp=at(8.01), asterisk_id=b.AST, call_id=hooked.call_id,
                                  channel_id=leg, exists=False)]
    state = ModelState().with_call(hooked)
    for event in events:
        before = {cid: encode(c) for cid, c in state.calls.items()}
        given = state
        state, _ = step(state, event, SETTINGS)
        assert {cid: encode(c) for cid, c in given.calls.items()} == before, event


@pytest.mark.parametrize("name", sorted(NEW))
@pytest.mark.parametrize("ended", [False, True])
def test_the_journaled_snapshot_is_the_stored_one_and_revives_the_same_rows(
    name: str, ended: bool
) -> None:
    call = decode(copy.deepcopy(NEW[name]))
    if ended:  # its final snapshot: the digits keyed and the AGI sessions left out
        call.status = "ended"
    state = call_state(call)
    rows = call_rows(call, state)
    assert rows.call.state is state  # encoded once, for the journal and the row
    as_builtins = call_rows(call)
    assert msgspec.json.decode(state) == json.loads(json.dumps(as_builtins.call.state))
    revived = revive(msgspec.json.decode(state))  # a replay: the rows from the snapshot
    assert (revived.call, revived.legs, revived.recordings) == (
        as_builtins.call, as_builtins.legs, as_builtins.recordings)
