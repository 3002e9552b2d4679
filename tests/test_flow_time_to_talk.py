"""Announcements that respect the caller's time: with the shipped example configuration and the
shipped prompts' real lengths, how long after the caller's answer the parties can talk."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from recorder.ari.events import parse_timestamp
from recorder.config import CallsConfig, load_config
from recorder.devtools.demo import talk_after
from recorder.policy import Party, announcements_at_start, consent_rows, load_policy
from recorder.policy.loader import numbering_from
from recorder.policy.prompts import DEFAULT_DIRECTORY, prompt_lengths, read_manifest
from recorder.policy.timing import time_to_talk
from tests.harness.calls import CALLEE_HZ, CALLER_HZ
from tests.harness.stack import running_stack

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config" / "verbatim.example.yaml"
EXAMPLE_POLICY = ROOT / "config" / "policy.example.yaml"
ENV = {"VERBATIM_ARI_PASSWORD": "unused", "VERBATIM_DATABASE_DSN": "postgresql://unused"}
# Wednesday 10:00 in Los Angeles: the example policy's office hours (recorded, announced)
OFFICE_HOURS = datetime.fromisoformat("2026-11-25T10:00:00-08:00")
RING_S = 2.0


def example_calls() -> dict[str, Any]:
    """verbatim.example.yaml's calls section with the example policy, as running_stack takes
    it (its dial strings are the stack's own)."""
    calls = load_config(EXAMPLE_CONFIG, ENV).calls
    assert (calls.dial_strings.inbound, calls.dial_strings.outbound) == (
        "PJSIP/{target}", "PJSIP/{number}@trunk")
    out = {f.name: getattr(calls, f.name) for f in fields(CallsConfig) if f.name != "dial_strings"}
    return out | {"policy_file": EXAMPLE_POLICY}


@pytest.mark.parametrize(
    ("extension", "prompt"),
    [
        ("301", "consent-one-party-en"),  # the New York office: one-party
        ("201", "consent-all-party-en"),  # the San Francisco office: all-party
    ],
)
async def test_an_inbound_call_is_talking_within_10_s_of_the_callers_answer(
    tmp_path: Path, pg_dsn: str, extension: str, prompt: str
) -> None:
    """A New York caller to an extension that rings 2 s: the caller's prompt, the ring, and no
    prompt to the firm's own extension (the issue's trial: 25 s with the old defaults)."""
    calls = example_calls()
    async with running_stack(tmp_path, pg_dsn, start_epoch=OFFICE_HOURS.timestamp(),
                             shipped_prompts=True, **calls) as st:
        st.sim.set_endpoint(f"PJSIP/{extension}", answer_after=RING_S, tone_hz=CALLEE_HZ)
        caller = st.sim.start_call(caller_number="2125550100", args=["inbound", extension],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        call_id = await st.until_bridged()
        await st.advance(2.0)
        call, _legs, _recs, events = await st.hang_up(caller.id, call_id)
        answered = next(parse_timestamp(e["timestamp"]) for e in st.sim.events(
            "ChannelStateChange") if e["channel"]["id"] == caller.id
            and e["channel"]["state"] == "Up")
        both_in = parse_timestamp(st.sim.events("ChannelEnteredBridge")[-1]["timestamp"])
        rows = await consent_rows(st.repo.pool, call_id)
    assert call.recorded is True and call.decided_by == "rule 'Office hours'"
    assert [(r.party, r.prompt, r.played) for r in rows] == [
        ("caller", prompt, "finished")]  # the extension hears none
    waited = (both_in - answered).total_seconds()
    assert waited <= 10.0, f"the parties could talk only {waited:.1f} s after the answer"
    # what `verbatim explain --ring-time 2` predicts for this call, from the same manifest
    policy = load_policy(EXAMPLE_POLICY, numbering_from(load_config(EXAMPLE_CONFIG, ENV).calls))
    due = announcements_at_start(Party("caller", "2125550100"), Party("callee", extension), policy)
    predicted = time_to_talk(due, RING_S, prompt_lengths(read_manifest(DEFAULT_DIRECTORY)))
    assert abs(waited - predicted.seconds) < 0.25, (waited, str(predicted))
    measured = talk_after(events)  # what the demo prints: call.started to call.bridged
    assert measured is not None and abs(measured - waited) < 0.25
