"""Consent on the simulator: announcements before any recording, opt-out, hang-up mid-prompt."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from recorder.ari.events import parse_timestamp
from recorder.policy import consent_rows
from tests.harness.calls import CALLEE_HZ, CALLER_HZ, dialled
from tests.harness.stack import Stack, extensions_announced, running_stack


def times(sim: object, etype: str) -> list[float]:
    events = sim.events(etype)  # type: ignore[attr-defined]
    return [parse_timestamp(e["timestamp"]).timestamp() for e in events]


async def _all_party_caller_to_201(st: Stack) -> tuple[str, str]:
    """A San Francisco caller (all-party: CA) to 201, who answers after a second: the caller's
    channel and, once the parties are bridged, the call's id."""
    st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
    caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                               tone_hz=CALLER_HZ)
    await st.settle()
    return caller.id, await st.until_bridged()


async def test_all_party_caller_and_callee_hear_the_prompt_before_recording(
    tmp_path: Path, pg_dsn: str
) -> None:
    policy = extensions_announced(tmp_path)  # 201 hears its prompt too
    async with running_stack(tmp_path, pg_dsn, policy_file=policy) as st:
        caller_id, call_id = await _all_party_caller_to_201(st)
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        prompts = [e for e in st.sim.events("PlaybackFinished")
                   if "consent-all-party" in e["playback"]["media_uri"]]
        assert len(prompts) == 2  # the caller's, then the callee's
        (recording_started,) = times(st.sim, "RecordingStarted")
        assert all(parse_timestamp(p["timestamp"]).timestamp() <= recording_started
                   for p in prompts)
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played, r.mode) for r in rows] == [
            ("caller", "finished", "all-party"), ("callee", "finished", "all-party")]
        assert rows[0].state == "CA"
        call = await st.repo.call(call_id)
        assert call is not None and call.recorded is True and call.retention_class


async def test_a_prompt_asterisk_lacks_is_no_consent_and_the_call_is_recorded_anyway(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The all-party prompt is not installed: Asterisk ends each playback at once, "failed".
    Neither party heard it, so neither row says "finished" (before, both did: the audit trail
    claimed an announcement nobody heard); ops get an error per prompt; the call is put
    through and recorded whole (a missed recording is the worse failure, as in hook mode)."""
    policy = extensions_announced(tmp_path)
    async with running_stack(tmp_path, pg_dsn, policy_file=policy) as st:
        st.sim.dialplan.default_sound_seconds = None  # only verbatim/consent is installed
        with capture_logs() as logs:
            caller_id, call_id = await _all_party_caller_to_201(st)
            await st.advance(4.0)
            st.sim.hangup(caller_id)
            await st.settle()
        failed = [e["playback"]["state"] for e in st.sim.events("PlaybackFinished")
                  if e["playback"]["media_uri"].startswith("sound:")]
        assert failed == ["failed", "failed"]  # the caller's, then the callee's
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played) for r in rows] == [
            ("caller", "interrupted"), ("callee", "interrupted")]
        errors = [(e["event"], e["media"]) for e in logs if e["log_level"] == "error"]
        assert errors == [("consent.failed", "sound:verbatim/consent-all-party-en")] * 2
        call, legs, recs, events = await st.call_rows(call_id)
        assert call.recorded is True and recs
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)
        assert [e.kind for e in events].count("consent.failed") == 2


async def test_opt_out_during_the_prompt_leaves_no_recording(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(1.0)
        st.sim.send_dtmf(caller.id, "9")  # the default opt-out key
        await st.settle()
        await st.advance(4.0)
        await st.advance(3.0)
        st.sim.hangup(caller.id)
        await st.settle()
        call_id = await st.only_call_id()
        call, legs, recs, events = await st.call_rows(call_id)
        assert recs == [] and not st.sim.finished_recordings
        assert not list(st.spool.iterdir()) and not list(st.archive.rglob("*.wav"))
        assert call.outcome == "answered" and call.recorded is False
        assert all(leg.covered_ms in (None, 0) for leg in legs)
        assert await st.repo.gaps(call.started_at, call_id) == []  # refused, not a gap
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played, r.dtmf, r.opted_out) for r in rows] == [
            ("caller", "interrupted", "9", True)]
        assert "consent.interrupted" in [e.kind for e in events]


async def test_hang_up_during_the_prompt_leaves_nothing(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"])
        await st.settle()
        await st.advance(1.5)
        st.sim.hangup(caller.id)
        await st.settle()
        call_id = await st.only_call_id()
        call, _legs, recs, _ = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "abandoned")
        assert recs == [] and not list(st.spool.iterdir())
        assert not [r for r in st.sim.requests if r.path == "/channels/create"]
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played) for r in rows] == [("caller", "interrupted")]


# San Francisco: all-party (a "+" would not match _X. in the dialplan)
CALIFORNIA = "14155550123"

POLICY = """\
jurisdiction:
  offices:
    - {name: New York, state: NY, extensions: [{regex: "^3"}]}
"""


async def _new_york_caller_talking_to(st: Stack, extension: str,
                                      outside: str) -> tuple[str, str]:
    """A New York caller (one-party) talking to `extension`; `outside`, reached over the trunk,
    answers after a second when dialled. The caller's channel and the call's id."""
    st.sim.set_endpoint(f"PJSIP/{extension}", result="answer", answer_after=1.0,
                        tone_hz=CALLEE_HZ)  # fmt: skip
    st.sim.set_endpoint(f"PJSIP/{outside}@trunk", result="answer", answer_after=1.0,
                        tone_hz=1900)
    caller = st.sim.start_call(caller_number="2125550100", args=["inbound", extension],
                               tone_hz=CALLER_HZ)
    await st.settle()
    return caller.id, await st.until_bridged()


async def _transferred_to_california(st: Stack) -> tuple[str, str]:
    """A New York caller talks to extension 301 (one-party), who blind-transfers the call to
    San Francisco (all-party); the target has just answered. The caller's channel and the
    call's id."""
    caller_id, call_id = await _new_york_caller_talking_to(st, "301", CALIFORNIA)
    await st.advance(2.0)
    st.sim.blind_transfer(dialled(st.sim, call_id), CALIFORNIA)
    await st.settle()
    await st.advance(1.5)  # the target answers
    return caller_id, call_id


async def test_a_party_joining_from_an_all_party_state_is_announced_to_everyone(
    tmp_path: Path, pg_dsn: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with running_stack(tmp_path, pg_dsn, policy_file=policy) as st:
        caller_id, call_id = await _transferred_to_california(st)
        await st.advance(3.5)  # the all-party announcement, to both
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        rows = await consent_rows(st.repo.pool, call_id)
        # (party, its own law, the prompt it heard, when): New York heard the one-party
        # prompt at the start, then the all-party one when California joined
        assert [(r.party, r.mode, r.prompt, r.announcement, r.played) for r in rows] == [
            ("caller", "one-party", "consent-one-party-en", "before-bridge", "finished"),
            ("caller", "one-party", "consent-all-party-en", "on-join", "finished"),
            ("target1", "all-party", "consent-all-party-en", "on-join", "finished"),
        ]
        assert rows[-1].governing_mode == "all-party" and rows[-1].state == "CA"
        target_leg = next(r.channel_id for r in rows if r.party == "target1")
        joined = [e for e in st.sim.events("ChannelEnteredBridge")
                  if e["channel"]["id"] == target_leg]
        finished = [e for e in st.sim.events("PlaybackFinished")
                    if e["playback"]["target_uri"] == f"channel:{target_leg}"]
        assert joined and finished
        assert finished[0]["timestamp"] <= joined[0]["timestamp"]  # announced, then joined
        _call, legs, _recs, _ = await st.call_rows(call_id)
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)


async def test_a_party_joining_by_attended_transfer_is_announced_like_any_joiner(
    tmp_path: Path, pg_dsn: str
) -> None:
    """200 (New York office) takes a New York caller (one-party), consults a San Francisco
    number (all-party) through the app, then joins them: the caller now hears the all-party
    announcement, as any party whose call a stricter state joins."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace('"^3"', '"^[23]"'))
    outside = "14155550123"
    async with running_stack(tmp_path, pg_dsn, policy_file=policy) as st:
        caller_id, first = await _new_york_caller_talking_to(st, "200", outside)
        await st.advance(1.0)
        consult = st.sim.start_call(endpoint="PJSIP/200", caller_number="200",
                                    args=["outbound", outside], tone_hz=CALLEE_HZ)
        await st.settle()
        for _ in range(200):
            calls = [c for c in st.daemon.state.calls.values() if c.call_id != first]
            if calls and calls[0].phase == "bridged":
                break
            await st.advance(0.1, step=0.1)
        st.sim.attended_transfer(f"{first}-l2", consult.id)
        await st.settle()
        await st.advance(4.0)
        st.sim.hangup(caller_id)
        await st.settle()
        rows = await consent_rows(st.repo.pool, first)
        assert [(r.party, r.prompt, r.announcement) for r in rows] == [
            ("caller", "consent-one-party-en", "before-bridge"),
            ("caller", "consent-all-party-en", "on-join"),
        ]


async def test_opt_out_routed_by_policy_sends_the_caller_back_to_the_dialplan(
    tmp_path: Path, pg_dsn: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('opt_out:\n  then: route\n  route_to: "verbatim-optout,s,1"\n')
    async with running_stack(tmp_path, pg_dsn, policy_file=policy) as st:
        st.sim.add_extension("verbatim-optout", "s", [("Wait", "5"), ("Hangup", "")])
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(1.0)
        st.sim.send_dtmf(caller.id, "9")
        await st.settle()
        assert (caller.dialplan.context, caller.stasis_app) == ("verbatim-optout", None)
        continued = [r for r in st.sim.requests if r.path == f"/channels/{caller.id}/continue"]
        assert [r.params for r in continued] == [
            {"context": "verbatim-optout", "extension": "s", "priority": "1"}]
        await st.advance(6.0)
        await st.settle()
        call_id = await st.only_call_id()
        call, _legs, recs, _ = await st.call_rows(call_id)
        assert recs == [] and call.recorded is False and call.status == "ended"
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.opted_out) for r in rows] == [("caller", True)]


async def test_a_join_announcement_lost_while_disconnected_is_played_again(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A prompt in mid-call (a party joined from an all-party state) whose end was lost: played
    again, then audited like any other (before: dropped with the call's other prompts)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with running_stack(tmp_path, pg_dsn, policy_file=policy) as st:
        caller_id, call_id = await _transferred_to_california(st)  # announced to both now
        (to_caller,) = [p for p in st.sim.playbacks.values()
                        if p.json()["target_uri"] == f"channel:{caller_id}"]
        await st.sim.drop_websockets()
        st.sim.player.stop_playback(to_caller)  # its end is an event nobody hears
        await st.settle()
        await st.connected()
        await st.advance(3.5)  # the target's announcement, and the caller's again
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        rows = await consent_rows(st.repo.pool, call_id)
        assert sorted((r.party, r.announcement, r.played) for r in rows) == [
            ("caller", "before-bridge", "finished"),
            ("caller", "on-join", "finished"),  # the second playing's
            ("target1", "on-join", "finished"),
        ]
        _call, legs, _recs, _ = await st.call_rows(call_id)
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)
