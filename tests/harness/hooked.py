"""Hook-mode calls on the stack: the dialplan keeps the call (AGI hooks + Dial()); the parties'
tones, the [hook-in]/[hook-xfer] dialplan, and a call brought past its record hook."""

from __future__ import annotations

from typing import Any

from recorder.ari.events import parse_timestamp
from tests.harness.stack import Stack

CALLER, CALLEE, TARGET = 440, 700, 1000

PROMPT_S = 3.0  # the simulator's length of an unknown sound: the consent prompts


def agi(st: Stack, hook: str) -> str:
    assert st.running.agi_address is not None
    _, port = st.running.agi_address
    return f"agi://127.0.0.1:{port}/{hook}"


def hooked_dialplan(st: Stack, *first: tuple[str, str]) -> None:
    """[hook-in]: the record hook, then Dial(); [hook-xfer]: where blind transfers dial."""
    st.sim.add_extension("hook-in", "_X.", [
        *first,
        ("AGI", f"{agi(st, 'record')},inbound,${{EXTEN}}"),
        ("Dial", "PJSIP/${EXTEN},30"),
    ])
    st.sim.add_extension("hook-xfer", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
    st.sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)
    st.sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)


async def start_hooked(st: Stack, number: str = "+12125550100") -> tuple[Any, str]:
    """A call into [hook-in], past the caller's announcement (played by the AGI) until the
    record hook answered; the caller's channel and the call's id."""
    caller = st.sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER,
                                        caller_number=number)
    await st.settle()
    session = await st.sim.wait_agi(caller.id, "playing")
    assert any(c.startswith("STREAM FILE") for c in session.commands)
    assert caller.state == "Up"  # answered first: a caller not answered would hear nothing
    await st.advance(PROMPT_S)
    await st.sim.wait_agi(caller.id, "done")
    await st.settle()
    return caller, str(st.daemon.state.by_channel[caller.id])


def channel(st: Stack, prefix: str) -> Any:
    """The live channel whose name starts with `prefix` (a Local pair: its ;1)."""
    (ch,) = [c for c in st.sim.channels.values()
             if c.name.startswith(prefix) and not c.destroyed and not c.name.endswith(";2")]
    return ch


def at(event: dict[str, Any]) -> float:
    return parse_timestamp(event["timestamp"]).timestamp()
