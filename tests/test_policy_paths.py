"""One decision path: every row is a call path run through `verbatim explain` AND through the
daemon on the simulator (Stasis mode), and both must agree.

For each row: the same decision at each point of the path (the rule's action), the same final
decision (recorded or not, decided by, retention class), the same announcements to the same
parties (consent_audit rows against explain's stages), and, from the recordings' content, no
audio of a party for any time the decision said "not recorded" (and the parties of a recorded
call are in its files). Deleting the re-decision at a join, or the DID fact, fails rows here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from arisim.audio import tone_map

from recorder.model.records import Prompt
from recorder.policy import Explanation, consent_rows
from tests.harness.calls import dialled
from tests.harness.policy_paths import (
    CALLER_HZ,
    DAY,
    DEPARTMENTS,
    HOTLINE,
    NY,
    ROOT,
    ROWS,
    Row,
    explained,
    talking_with,
    until,
)
from tests.harness.stack import Stack, running_stack

RING_GROUPS = {"600": ("301", "210", "250"), "601": ("201", "202")}


TONES = [1300, 1700, 2100, 2500]  # the callee (or member, or forward target), then targets


def endpoint(row: Row, number: str) -> str:
    if row.direction == "outbound" and number == row.target:
        return f"PJSIP/{number}@trunk"
    return f"PJSIP/{number}" if len(number) <= 6 else f"PJSIP/{number}@trunk"


def set_up_parties(st: Stack, row: Row) -> dict[str, int]:
    """How each phone of the row behaves when dialled; party label -> its tone."""
    tones = iter(TONES)
    parties = {"caller": CALLER_HZ}
    callee = row.answered_by or row.target
    for member in RING_GROUPS[row.target] if row.answered_by else ():
        if member != row.answered_by:  # the others ring until the call is answered elsewhere
            st.sim.set_endpoint(endpoint(row, member), result="manual", tone_hz=2900)
    if row.forward_to:
        st.sim.set_endpoint(endpoint(row, row.target), result="forward",
                            forward_to=row.forward_to, answer_after=0.5)
        callee = row.forward_to
    later = [*row.transfers, *([row.attended] if row.attended else [])]
    labels = ["callee" if not row.forward_to else "target1"] + [
        f"target{i + 1 + bool(row.forward_to)}" for i in range(len(later))]
    for label, number in zip(labels, [callee, *later], strict=True):
        parties[label] = hz = next(tones)
        st.sim.set_endpoint(endpoint(row, number), result="answer", answer_after=1.0,
                            tone_hz=hz)
    return parties


def prompt_to(st: Stack, label: str) -> Prompt | None:
    prompts: list[Prompt] = [p for call in st.daemon.state.calls.values()
                             for p in call.prompts.values()]
    return next((p for p in prompts if p.to == label), None)


async def act_in_prompt(st: Stack, row: Row, label: str) -> bool:
    """If `label` is the row's opt-out or hang-up party: wait for its prompt, then act."""
    if label not in (row.opt_out, row.hangup_during):
        return False
    await until(st, lambda: prompt_to(st, label) is not None)
    prompt = prompt_to(st, label)
    if prompt is None:
        return False
    await st.advance(1.0)
    if row.opt_out == label:
        st.sim.send_dtmf(prompt.channel_id, "9")
    else:
        st.sim.hangup(prompt.channel_id)
    await st.settle()
    return True


def bridged(st: Stack) -> bool:
    calls = list(st.daemon.state.calls.values())
    return bool(calls) and calls[0].phase == "bridged" and not calls[0].prompts


def joined(st: Stack, label: str) -> bool:
    calls = list(st.daemon.state.calls.values())
    return bool(calls) and any(leg.party == label and leg.in_bridge
                               for leg in calls[0].legs.values()) and not calls[0].prompts


async def run_on_simulator(row: Row, tmp_path: Path, pg_dsn: str, policy_file: Path) -> dict[
        str, Any]:
    async with running_stack(tmp_path, pg_dsn, policy_file=policy_file, departments=DEPARTMENTS,
                             ring_groups=RING_GROUPS, start_epoch=row.at.timestamp()) as st:
        parties = set_up_parties(st, row)
        args = [row.direction, row.target] + ([f"did={row.did}"] if row.did else [])
        caller_endpoint = f"PJSIP/{row.trunk}" if row.direction == "inbound" else (
            f"PJSIP/{row.caller}")
        caller = st.sim.start_call(endpoint=caller_endpoint, caller_number=row.caller,
                                   args=args, tone_hz=CALLER_HZ)
        await st.settle()
        call_id = next(iter(st.daemon.state.calls))
        ended = await act_in_prompt(st, row, "caller") and row.hangup_during == "caller"
        if not ended and await act_in_prompt(st, row, "callee"):
            ended = row.hangup_during == "callee"
        if not ended:
            await until(st, lambda: bridged(st))
            await st.advance(2.0)
        for i, target in enumerate(row.transfers if not ended else ()):
            label = f"target{i + 1 + bool(row.forward_to)}"
            call = st.daemon.state.calls[call_id]
            firm = call.caller_channel if row.direction == "outbound" else next(
                leg.channel_id for leg in reversed(call.legs.values())
                if leg.in_bridge and leg.role == "callee" and leg.state != "gone")
            st.sim.blind_transfer(firm, target)
            await st.settle()
            await act_in_prompt(st, row, label)
            await until(st, lambda label=label: joined(st, label))
            await st.advance(2.0)
        if row.attended and not ended:
            await link_by_attended_transfer(st, call_id, row.target, row.attended)
        if call_id in st.daemon.state.calls:
            st.sim.hangup(caller.id)
        await st.settle()
        await st.advance(0.5)
        row_, _legs, recs, events = await st.call_rows(call_id)
        return {
            "call": row_, "recordings": recs, "events": events, "parties": parties,
            "consent": await consent_rows(st.repo.pool, call_id),
        }


async def link_by_attended_transfer(st: Stack, call_id: str, firm: str, target: str) -> None:
    """The firm's party calls `target` through the app (a consultation call, internal), then
    joins the two calls (destination "link")."""
    consult = st.sim.start_call(endpoint=f"PJSIP/{firm}", caller_number=firm,
                                args=["internal", target], tone_hz=TONES[0])
    await st.settle()
    await until(st, lambda: len(st.daemon.state.calls) == 2 and all(
        c.phase == "bridged" and not c.prompts for c in st.daemon.state.calls.values()))
    await st.advance(1.0)
    st.sim.attended_transfer(dialled(st.sim, call_id), consult.id, delay=0.0)
    await st.settle()
    await until(st, lambda: not any(c.prompts for c in st.daemon.state.calls.values()))
    await st.advance(2.0)


def assert_only_allowed_audio(e: Explanation, row: Row, got: dict[str, Any],
                              recorded: bool) -> set[int]:
    """No party's tone is in a file unless a stage it was present in was recorded (until an
    opt-out: only the refusing party must be in no file); the tones heard, returned."""
    tones: dict[str, int] = got["parties"]
    allowed = {label: False for label in tones}
    for stage in e.stages:
        for label, _j in stage.parties:
            if label in allowed and recorded and (
                    stage.decision.record or stage.decision.opted_out):
                allowed[label] = True
    heard: set[int] = set()
    for rec in got["recordings"]:
        if rec.path:
            for window in tone_map(Path(rec.path), list(tones.values())):
                heard |= window
    for label, hz in tones.items():
        if not allowed[label] or label == row.opt_out:
            assert hz not in heard, f"{label} is in a recording policy did not allow"
    return heard


def test_the_table_has_forty_rows_or_more() -> None:
    assert len(ROWS) >= 40 and len({r.name for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
async def test_explain_and_the_daemon_agree(
    row: Row, tmp_path: Path, pg_dsn: str, policy_file: Path
) -> None:
    e = explained(row, policy_file)
    got = await run_on_simulator(row, tmp_path, pg_dsn, policy_file)
    call, events = got["call"], got["events"]
    # the same decision at every point of the path, and in the end
    decisions = [ev.detail for ev in events if ev.kind == "consent.decision"]
    assert [d["action"] for d in decisions] == [s.decision.action for s in e.stages]
    final = e.final.decision
    assert (call.recorded, call.decided_by, call.retention_class) == (
        final.record, ", ".join(final.decided_by), final.retention)
    # the same announcements to the same parties
    heard = sorted((r.party, r.prompt, r.played) for r in got["consent"])
    # (a party joining by attended transfer hears its prompts in its own call)
    said = sorted((a.to, a.prompt) for s in e.stages for a in s.announcements
                  if not (row.attended and a.to == f"target{len(e.stages) - 1}"))
    assert [(p, pr) for p, pr, _ in heard] == said
    if e.hung_up:
        assert [played for p, _, played in heard if p == e.hung_up] == ["interrupted"]
    # the audio: a party policy never recorded is in no file; nothing is recorded once policy
    # stopped; a recorded call's present parties are in its files
    tones = got["parties"]
    heard_tones = assert_only_allowed_audio(e, row, got, recorded=True)
    flips = [ev.at for ev, d in zip([x for x in events if x.kind == "consent.decision"],
                                     decisions, strict=True) if not d["record"]]
    for rec in got["recordings"]:
        if flips and rec.ended_at is not None and any(
                f > (rec.started_at or rec.requested_at) for f in flips):
            stop = min(f for f in flips if f > (rec.started_at or rec.requested_at))
            assert rec.ended_at <= stop, f"{rec.name} ran past the policy's stop"
    if final.record and not e.hung_up:
        assert got["recordings"], "a call policy records has a recording"
        assert {tones["caller"]} <= heard_tones


async def test_the_shipped_dialplan_passes_the_did_and_the_trunk(
    tmp_path: Path, pg_dsn: str, policy_file: Path
) -> None:
    """dialplan/verbatim.conf hands the DID (CALLERID(dnid)) to the app; the trunk is the
    calling endpoint: a call to 301 on the hotline DID is forced, one on the fax trunk never."""
    root = Path(__file__).resolve().parents[1]
    async with running_stack(tmp_path, pg_dsn, policy_file=policy_file, departments=DEPARTMENTS,
                             start_epoch=DAY.timestamp()) as st:
        st.sim.load_dialplan((root / "dialplan" / "verbatim.conf").read_text())
        st.sim.set_endpoint("PJSIP/301", answer_after=1.0)
        for endpoint_, dnid in (("PJSIP/carrier", "+1 (212) 555-0199"), ("PJSIP/fax", "")):
            caller = st.sim.start_dialplan_call("301", context="verbatim-inbound",
                                                endpoint=endpoint_, caller_number=NY, dnid=dnid)
            await st.settle()
            await st.advance(8.0)
            st.sim.hangup(caller.id)
            await st.settle()
        calls = sorted(await st.repo.recent_calls(5), key=lambda c: c.started_at)
        assert [(c.recorded, c.decided_by, c.retention_class) for c in calls] == [
            (True, "rule 'Litigation hotline'", "litigation-10y"),
            (False, "rule 'Fax trunk'", "standard"),
        ]


async def test_a_forced_call_transferred_into_a_never_department_stops_at_the_join(
    tmp_path: Path, pg_dsn: str, policy_file: Path
) -> None:
    """The hotline DID forces recording; the attorney transfers the caller to HR (never at a
    transfer point): the recording stops when the transfer lands, before HR can be heard, and
    the file ends there — both parties in it until then, nobody after."""
    async with running_stack(tmp_path, pg_dsn, policy_file=policy_file, departments=DEPARTMENTS,
                             start_epoch=DAY.timestamp()) as st:
        st.sim.set_endpoint("PJSIP/301", answer_after=1.0, tone_hz=1300)
        st.sim.set_endpoint("PJSIP/250", answer_after=1.0, tone_hz=2100)
        caller = st.sim.start_call(endpoint="PJSIP/carrier", caller_number=NY,
                                   args=["inbound", "301", f"did={HOTLINE}"], tone_hz=CALLER_HZ)
        await st.settle()
        call_id = await st.until_bridged()
        await st.advance(3.0)
        st.sim.blind_transfer(dialled(st.sim, call_id), "250")
        await st.settle()
        await st.advance(5.0)  # HR answers and talks with the caller
        st.sim.hangup(caller.id)
        await st.settle()
        call, _legs, (rec,), events = await st.call_rows(call_id)
        stop = next(e.at for e in events if e.kind == "consent.decision" and not
                    e.detail["record"])
        assert rec.ended_at is not None and rec.started_at is not None
        assert abs((rec.ended_at - stop).total_seconds()) < 0.2  # stopped at the join
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, 1300, 2100])
        talked = round((stop - rec.started_at).total_seconds() * 10)
        assert len(windows) <= talked + 1  # no audio after the stop
        assert all(w == {CALLER_HZ, 1300} for w in windows[:talked - 1])
        assert not any(2100 in w for w in windows)
        assert (call.recorded, call.decided_by) == (False, "rule 'Into HR'")
        assert await st.repo.gaps(call.started_at, call_id) == []  # a policy stop, not a gap


async def test_a_call_forwarded_to_a_do_not_record_number_keeps_none_of_its_audio(
    tmp_path: Path, pg_dsn: str, policy_file: Path
) -> None:
    async with running_stack(tmp_path, pg_dsn, policy_file=policy_file, departments=DEPARTMENTS,
                             start_epoch=DAY.timestamp()) as st:
        st.sim.set_endpoint("PJSIP/301", result="forward", forward_to="12135550150",
                            answer_after=0.5)
        st.sim.set_endpoint("PJSIP/12135550150@trunk", answer_after=1.0, tone_hz=2100)
        caller = st.sim.start_call(endpoint="PJSIP/carrier", caller_number=NY,
                                   args=["inbound", "301"], tone_hz=CALLER_HZ)
        await st.settle()
        call_id = await st.until_bridged()
        await st.advance(4.0)
        st.sim.hangup(caller.id)
        await st.settle()
        call, legs, recs, _events = await st.call_rows(call_id)
        assert recs == [] and not list(st.archive.rglob("*.wav"))
        assert (call.recorded, call.decided_by) == (False, "do_not_record 'Court clerk'")
        assert any(leg.answered_at for leg in legs if leg.role == "callee")  # they did talk
        assert await st.repo.gaps(call.started_at, call_id) == []


# --- hook mode: the same paths through the shipped dialplan/verbatim-hooks.conf ----------------

HOOK_ROWS = [r for r in ROWS if r.attended is None]


def hooked_dialplan(st: Stack, row: Row) -> None:
    """The shipped hooks conf, called as its header shows: [hook-in] runs verbatim-record then
    Dial() with the answered hook; Dial() follows a 302 into [from-internal], which does the
    same; blind transfers land in [verbatim-hook-transfer]."""
    assert st.running.agi_address is not None
    port = st.running.agi_address[1]
    st.sim.load_dialplan((ROOT / "dialplan" / "verbatim-hooks.conf").read_text(),
                         {"127.0.0.1:4573": f"127.0.0.1:{port}"})
    answered = "U(verbatim-answered^${VERBATIM_CALL_ID})"
    if row.answered_by:
        dial = "&".join(f"PJSIP/{m}" for m in RING_GROUPS[row.target])
    else:
        dial = "PJSIP/${EXTEN}@trunk" if row.direction == "outbound" else "PJSIP/${EXTEN}"
    st.sim.add_extension("hook-in", "_X.", [
        ("Gosub", f"verbatim-record,s,1({row.direction},${{EXTEN}})"),
        ("Dial", f"{dial},30,{answered}")])
    st.sim.add_extension("from-internal", "_X.", [
        ("Gosub", "verbatim-record,s,1(internal,${EXTEN})"),
        ("Dial", f"PJSIP/${{EXTEN}},30,{answered}")])


async def run_hooked(row: Row, tmp_path: Path, pg_dsn: str, policy_file: Path) -> dict[str, Any]:
    async with running_stack(tmp_path, pg_dsn, hooks=True, policy_file=policy_file,
                             departments=DEPARTMENTS, start_epoch=row.at.timestamp()) as st:
        hooked_dialplan(st, row)
        parties = set_up_parties(st, row)
        caller_endpoint = f"PJSIP/{row.trunk}" if row.direction == "inbound" else (
            f"PJSIP/{row.caller}")
        caller = st.sim.start_dialplan_call(row.target, context="hook-in",
                                            endpoint=caller_endpoint, caller_number=row.caller,
                                            dnid=row.did or "", tone_hz=CALLER_HZ)
        await st.settle()
        call_id = next(iter(st.daemon.state.calls))
        ended = await act_in_prompt(st, row, "caller") and row.hangup_during == "caller"
        if not ended and await act_in_prompt(st, row, "callee"):
            ended = row.hangup_during == "callee"
        if not ended:
            await until(st, lambda: bool(talking_with(st, caller.id)) and not any(
                c.prompts for c in st.daemon.state.calls.values()))
            await st.advance(2.0)
        for i, target in enumerate(row.transfers if not ended else ()):
            label = f"target{i + 1 + bool(row.forward_to)}"
            if row.direction == "outbound":
                firm, transferee = caller.id, talking_with(st, caller.id)[0].id
            else:
                firm, transferee = talking_with(st, caller.id)[0].id, caller.id
            st.sim.blind_transfer(firm, target, context="verbatim-hook-transfer")
            await st.settle()
            await act_in_prompt(st, row, label)
            await until(st, lambda t=transferee, x=target: any(
                c.name.startswith(f"PJSIP/{x}") for c in talking_with(st, t)) and not any(
                c.prompts for c in st.daemon.state.calls.values()))
            await st.advance(2.0)
        for ch in list(st.sim.channels.values()):
            if ch.name.startswith("PJSIP/") and not ch.hungup:
                st.sim.hangup(ch.id)
                await st.settle()
        await st.advance(0.5)
        row_, _legs, recs, events = await st.call_rows(call_id)
        assert len(await st.repo.recent_calls(5)) == 1  # one call, whatever joined it
        return {
            "call": row_, "recordings": recs, "events": events, "parties": parties,
            "consent": await consent_rows(st.repo.pool, call_id),
        }


@pytest.mark.parametrize("row", HOOK_ROWS, ids=[r.name for r in HOOK_ROWS])
async def test_explain_and_hook_mode_agree(
    row: Row, tmp_path: Path, pg_dsn: str, policy_file: Path
) -> None:
    """Hook mode decides as explain does. What it cannot do, it says: a prompt due to a party
    already in a Dial() bridge is not played but logged as consent.not_announced, and a call
    policy would record only from a join whose present parties cannot hear the announcement is
    not recorded (consent.recording_not_started) rather than recorded unannounced."""
    e = explained(row, policy_file)
    got = await run_hooked(row, tmp_path, pg_dsn, policy_file)
    call, events = got["call"], got["events"]
    decisions = [ev.detail for ev in events if ev.kind == "consent.decision"]
    assert [d["action"] for d in decisions] == [s.decision.action for s in e.stages]
    # the announcements hook mode can play: the caller's before Dial(), each answering or
    # joining party's own by its answered hook; the others are named as not announced
    newcomers = ["caller", "callee", *(f"target{i}" for i in range(1, len(e.stages)))]
    playable: list[tuple[str, str]] = []
    unplayable: list[tuple[str, str]] = []
    for i, stage in enumerate(e.stages):
        for a in stage.announcements:
            own = a.to in (("caller", "callee") if i == 0 else (newcomers[i + 1]
                                                                if i + 1 < len(newcomers) else ""))
            if row.answered_by and i == 1:
                own = a.to == "callee"
            (playable if own else unplayable).append((a.to, a.prompt))
    not_started = any(ev.kind == "consent.recording_not_started" for ev in events)
    heard = sorted((r.party, r.prompt) for r in got["consent"])
    if not not_started:
        assert heard == sorted(playable)
    missed = [p for ev in events if ev.kind == "consent.not_announced"
              for p in ev.detail.get("prompts", [])]
    assert len(missed) == len(unplayable), (missed, unplayable)
    final = e.final.decision
    recorded = final.record and not not_started
    assert (call.recorded, call.decided_by, call.retention_class) == (
        recorded, ", ".join(final.decided_by), final.retention)
    tones = got["parties"]
    heard_tones = assert_only_allowed_audio(e, row, got, recorded=not not_started)
    if recorded and not e.hung_up:
        assert got["recordings"] and tones["caller"] in heard_tones
