"""Calls on the in-process stack (tests.harness.stack): the parties' tones, a call brought to two
parties bridged, the controls by DTMF and by the API, and reading the simulator's events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from arisim.audio import tone_map
from arisim.server import Simulator

from recorder.ari.events import parse_timestamp
from recorder.db.controls import ControlQueue
from tests.harness.stack import Stack

CALLER_HZ, CALLEE_HZ = 440, 1300


def event_time(sim: Simulator, etype: str, **match: Any) -> float:
    """Virtual seconds (since the epoch) of the first event of `etype` whose fields match."""
    for e in sim.events(etype):
        if all(_field(e, k) == v for k, v in match.items()):
            return parse_timestamp(e["timestamp"]).timestamp()
    raise AssertionError(f"no {etype} {match}")


def _field(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def assert_both_tones(path: Path, seconds: float) -> None:
    """The file holds both parties' tones in every 100-ms window, for `seconds` (± 100 ms)."""
    windows = tone_map(path, [CALLER_HZ, CALLEE_HZ])
    assert abs(len(windows) * 0.1 - seconds) <= 0.1 + 1e-6, (len(windows), seconds)
    full = windows if len(windows) * 0.1 <= seconds else windows[:-1]
    missing = [i for i, w in enumerate(full[:-1]) if w != {CALLER_HZ, CALLEE_HZ}]
    assert not missing, f"windows without both tones: {missing[:10]}"


def assert_talked_throughout(windows: list[set[int]], caller_hz: int, other_hz: int) -> None:
    """Both parties in every 100-ms window of a bridge recording once the other party is heard,
    to the last (the hang-up's part) window. Before that the caller may be alone: the recording
    starts before the other party is added to the bridge (so no word of theirs can go
    unrecorded), and under load the simulator's clock ticks on between the two requests."""
    assert windows[:-1], windows
    first = next((i for i, w in enumerate(windows) if other_hz in w), len(windows))
    assert all(w == {caller_hz} for w in windows[:first]), windows
    missing = [i for i, w in enumerate(windows[first:-1], first) if w != {caller_hz, other_hz}]
    assert first < len(windows) - 1 and not missing, (
        f"windows without both tones: {missing[:10]} of {len(windows)}; heard from {first}")


async def run_answered_call(
    stack: Stack, args: list[str], endpoint: str, number: str, ring_s: float, talk_s: float
) -> tuple[str, str]:
    stack.sim.set_endpoint(endpoint, result="answer", answer_after=ring_s, tone_hz=CALLEE_HZ)
    caller = stack.sim.start_call(caller_number=number, args=args, tone_hz=CALLER_HZ)
    await stack.settle()
    await stack.advance(3.0)  # the consent prompt
    await stack.advance(ring_s)
    await stack.until_bridged()  # the callee's own announcement, where all-party applies
    await stack.advance(talk_s)
    stack.sim.hangup(caller.id)
    await stack.settle()
    return caller.id, await stack.only_call_id()


async def bridged_call(st: Stack) -> tuple[str, str]:
    """Start an inbound call and bring it to two parties bridged; returns (caller id, call id)."""
    st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
    caller = st.sim.start_call(
        caller_number="4155550100", args=["inbound", "201"], tone_hz=CALLER_HZ
    )
    await st.settle()
    call_id = await st.until_bridged()
    await st.advance(0.5)
    return caller.id, call_id


async def control_by_api(st: Stack, call_id: str, action: str) -> None:
    """As the API does: a control_requests row (NOTIFY); the daemon carries it out."""
    queue = ControlQueue(st.repo.pool)
    request_id = await queue.submit(call_id, action, None, "crm")
    for _ in range(300):
        await st.settle()
        state = await queue.get(request_id)
        assert state is not None
        if state.final:
            assert (state.status, state.detail) == ("done", action)
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"control {action} not carried out")


async def control_by_dtmf(st: Stack, channel_id: str, code: str) -> None:
    for digit in code:
        st.sim.send_dtmf(channel_id, digit)
    await st.settle()


async def advance_around(st: Stack, seconds: float) -> None:
    """Advance virtual time without waiting for the daemon to be quiet (a lane is blocked on
    the held request, so it never is): the simulator settles, the daemon gets a moment."""
    for _ in range(round(seconds / 0.1)):
        await st.sim.advance(0.1)
        await st.sim.settle()
        await asyncio.sleep(0.01)


def dialled(sim: Simulator, call_id: str, n: int = 0) -> str:
    """The channel the daemon asked Asterisk to create or originate for `call_id`, the n-th
    (0: its first callee), read from the requests the simulator answered."""
    made = [r.params["channelId"] for r in sim.requests
            if r.method == "POST" and r.path in ("/channels/create", "/channels")
            and str(r.params.get("appArgs", "")).split(",")[-1] == call_id]
    return str(made[n])


def recordings(sim: Simulator) -> list[str]:
    """The names of the recordings the daemon asked Asterisk to start, in order."""
    return [str(r.params["name"]) for r in sim.requests
            if r.method == "POST" and r.path.endswith("/record")]
