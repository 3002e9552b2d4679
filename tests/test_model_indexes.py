"""The model state's indexes (ARI ids -> their call) after a step: ModelState.with_call, given
the call as the state held it, keeps the indexes untouched when the step gave the call no new
id, and indexes what it did give exactly as a state built from nothing would."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recorder.ari import events as ev
from recorder.ari.events import ChannelInfo
from recorder.model import commands as cmd
from recorder.model.calls import step
from recorder.model.settings import CallSettings
from recorder.model.snapshot import decode
from recorder.model.state import Call, Leg, ModelState, Recording

SNAPSHOTS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "snapshots_v2.json").read_text(encoding="utf-8"))


def stasis_call(call_id: str = "") -> Call:
    call = decode(copy.deepcopy(SNAPSHOTS["stasis_bridged_paused"]))
    if call_id:
        call.call_id = call_id
    return call


def indexes(state: ModelState) -> dict[str, dict[str, str]]:
    return {name: dict(getattr(state, name).items())
            for name in ("by_channel", "by_bridge", "by_recording", "by_playback", "by_local")}


def new_leg(call: Call) -> None:
    leg = next(iter(call.legs.values()))
    call.legs["1700000000.9"] = dataclasses.replace(leg, channel_id="1700000000.9")


def local_leg_again(call: Call) -> None:  # a leg made anew under its id, as a Local half
    key, leg = next(iter(call.legs.items()))
    call.legs[key] = dataclasses.replace(leg, local_base="Local/300@transfer-00000047")


def new_recording(call: Call) -> None:
    rec = next(iter(call.recordings.values()))
    call.recordings["seg-9"] = Recording(**{**rec.__dict__, "name": "seg-9", "legs": []})


def new_prompt(call: Call) -> None:
    playing = decode(copy.deepcopy(SNAPSHOTS["stasis_policy_prompt"])).prompts
    call.prompts["pb-9"] = dataclasses.replace(next(iter(playing.values())), playback_id="pb-9")


def new_playback(call: Call) -> None:
    call.stasis.playback_id = "pb-10"


def new_bridge(call: Call) -> None:
    call.stasis.extra_bridges.append("bridge-9")


def nothing(call: Call) -> None:
    call.gaps += 1


CHANGES: list[Callable[[Call], None]] = [nothing, new_leg, local_leg_again, new_recording,
                                         new_prompt, new_playback, new_bridge]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_a_step_indexes_what_it_added_as_a_state_built_anew_would(
    change: Callable[[Call], None],
) -> None:
    before = stasis_call()
    state = ModelState().with_call(before)
    after = before.copy()
    change(after)
    stepped = state.with_call(after, before)
    assert stepped.calls[after.call_id] is after
    assert indexes(stepped) == indexes(ModelState().with_call(after))
    if change is nothing:
        assert indexes(stepped) == indexes(state)
        assert all(getattr(stepped, n) is getattr(state, n) for n in indexes(state))


def test_a_step_that_changes_nothing_leaves_the_state_as_it_was() -> None:
    """A repeated Dial status: no snapshot, no new state (the step's copy is dropped)."""
    call = stasis_call()
    state = ModelState().with_call(call)
    callee = next(leg for leg in call.legs.values() if leg.role == "callee")
    dial = ev.Dial(timestamp=callee.started_at, asterisk_id=call.asterisk_id,
                   peer=ChannelInfo(callee.channel_id, callee.channel_name, "Up"),
                   dialstatus=callee.dialstatus)
    stepped, out = step(state, dial, CallSettings())
    assert not [c for c in out if isinstance(c, cmd.SaveCall)]
    assert stepped is state


def test_a_call_another_took_an_id_from_takes_it_back_at_its_next_step() -> None:
    """Two calls an attended transfer links hold one Local pair's base: each call's step points
    it at that call, whether or not the step gave it a new id (as before the indexes were kept
    untouched: recorder.model.routing finds the Local's call by it)."""
    base = "Local/_attended@transfer-00000027"
    first, second = stasis_call("call-a"), stasis_call("call-b")
    for call, key in ((first, "1700000000.1"), (second, "1700000000.1")):
        call.legs = {k: dataclasses.replace(leg, local_base=base if k == key else None)
                     for k, leg in call.legs.items()}
        call.legs = {f"{call.call_id}-{k}": dataclasses.replace(g, channel_id=f"{call.call_id}-{k}")
                     for k, g in call.legs.items()}
        call.recordings = {f"{call.call_id}-{k}": dataclasses.replace(r, name=f"{call.call_id}-{k}")
                           for k, r in call.recordings.items()}
        call.bridge_id = f"{call.call_id}-bridge"
    state = ModelState().with_call(first).with_call(second)
    assert state.by_local[base] == "call-b" and state.robbed == {"call-a"}
    again = first.copy()
    state = state.with_call(again, first)
    assert state.by_local[base] == "call-a" and state.robbed == {"call-b"}
    state = state.with_call(second.copy(), second)
    assert state.by_local[base] == "call-b" and state.robbed == {"call-a"}
    ended = dataclasses.replace(again.copy(), status="ended")
    state = state.with_call(ended, again)
    assert "call-a" not in state.calls and not state.robbed
    assert state.by_local[base] == "call-b"
    assert isinstance(next(iter(state.calls["call-b"].legs.values())), Leg)
