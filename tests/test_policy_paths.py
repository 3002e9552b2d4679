"""One decision path: every row is a call path run through `verbatim explain` AND through the
daemon on the simulator (Stasis mode), and both must agree.

For each row: the same decision at each point of the path (the rule's action), the same final
decision (recorded or not, decided by, retention class), the same announcements to the same
parties (consent_audit rows against explain's stages), and, from the recordings' content, no
audio of a party for any time the decision said "not recorded" (and the parties of a recorded
call are in its files). Deleting the re-decision at a join, or the DID fact, fails rows here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from arisim.audio import tone_map

from recorder.config import CallsConfig
from recorder.policy import Explanation, Join, call_facts, consent_rows, explain, load_policy
from recorder.policy.loader import numbering_from
from tests.stack import Stack, running_stack

POLICY = """\
defaults: {action: yes, retention: standard, time_zone: America/New_York}
opt_out: {dtmf: "9", then: continue, when_forced: continue}
announcements: {to_extensions: true}
do_not_record:
  - {name: Court clerk, numbers: ["+12135550150"]}
  - {name: Privileged line, numbers: ["+12125550177"]}
rules:
  - {name: Fax trunk, match: {trunk: fax}, action: never}
  - name: Litigation hotline
    match: {did: ["+12125550199"]}
    action: force
    retention: litigation-10y
  - {name: Intake line, match: {did: ["+12125550111"]}, action: no}
  - {name: Internal calls, match: {direction: internal}, action: no}
  - name: Night
    match: {direction: inbound, time: [{days: mon-sun, hours: "22:00-06:00"}]}
    action: no
  - {name: HR, match: {department: HR}, action: never}
  - {name: Litigation, match: {department: Litigation}, action: force, retention: litigation-10y}
  - {name: Into HR, at: transfer, match: {department: HR}, action: never}
  - name: To litigation
    at: transfer
    match: {department: Litigation}
    action: force
    retention: litigation-10y
  - {name: Into reception, at: transfer, match: {extension: ["305"]}, action: no}
  - name: Forwarded out
    at: transfer
    match: {via: forward, target: [{regex: "^\\\\+1"}]}
    action: yes
jurisdiction:
  offices:
    - {name: San Francisco, state: CA, extensions: [{regex: "^2[0-9]{2}$"}]}
    - {name: New York, state: NY, extensions: [{regex: "^3[0-9]{2}$"}]}
"""
DEPARTMENTS = {"Litigation": ("210", "211"), "HR": ("250", "350")}
RING_GROUPS = {"600": ("301", "210", "250"), "601": ("201", "202")}
DAY = datetime.fromisoformat("2026-11-25T10:30:00-05:00")  # a Wednesday, office hours
NIGHT = datetime.fromisoformat("2026-11-25T23:30:00-05:00")

NY, SF, CHI = "+12125550100", "+14155550100", "+13125550100"
COURT, PRIVILEGED = "+12135550150", "+12125550177"
HOTLINE, INTAKE = "+12125550199", "+12125550111"


@dataclass(frozen=True)
class Row:
    name: str
    direction: str = "inbound"
    caller: str = NY
    target: str = "301"
    did: str | None = None
    trunk: str = "carrier"  # inbound: the calling endpoint; outbound: the dial string's
    at: datetime = DAY
    forward_to: str | None = None  # the callee answers 302 to this target before answering
    answered_by: str | None = None  # `target` is a ring group and this member answers
    transfers: tuple[str, ...] = ()  # blind transfers by the firm's party, in order
    attended: str | None = None  # then the firm's party consults this extension and links
    opt_out: str | None = None  # the party pressing the opt-out key during its announcement
    hangup_during: str | None = None  # the party hanging up during its announcement


ROWS = [
    # the call as it starts: route, department, extension, numbers
    Row("one-party both ends"),
    Row("all-party caller", caller=SF),
    Row("all-party office", target="201"),
    Row("fax trunk never", trunk="fax"),
    Row("forced DID", did=HOTLINE),
    Row("no DID", did=INTAKE),
    Row("night", at=NIGHT),
    Row("litigation department", target="210"),
    Row("HR department", target="250"),
    Row("court clerk calls", caller=COURT),
    Row("privileged DID", did=PRIVILEGED),
    Row("withheld caller", caller=""),
    Row("Illinois caller to SF", caller=CHI, target="201"),
    # opt-out and hang-ups during the announcement
    Row("caller opts out", caller=SF, opt_out="caller"),
    Row("callee opts out", caller=SF, opt_out="callee"),
    Row("caller opts out of a forced call", did=HOTLINE, opt_out="caller"),
    Row("caller hangs up in its prompt", caller=SF, hangup_during="caller"),
    Row("callee hangs up in its prompt", caller=SF, hangup_during="callee"),
    # blind transfers
    Row("transfer within NY", transfers=("302",)),
    Row("transfer to SF", transfers=("201",)),
    Row("transfer into HR", transfers=("250",)),
    Row("forced DID transferred into HR", did=HOTLINE, transfers=("250",)),
    Row("transfer to reception", transfers=("305",)),
    Row("no DID transferred to litigation", did=INTAKE, transfers=("210",)),
    Row("night call transferred to litigation", at=NIGHT, transfers=("211",)),
    Row("fax never beats a later force", trunk="fax", transfers=("210",)),
    Row("transfer to the court clerk", transfers=("12135550150",)),
    Row("SF caller transferred within NY", caller=SF, transfers=("302",)),
    Row("transfer target opts out", transfers=("201",), opt_out="target1"),
    Row("forced DID transferred to SF", did=HOTLINE, transfers=("201",)),
    Row("attended within NY", attended="302"),
    Row("attended into HR", attended="250"),
    Row("no DID, attended to litigation", did=INTAKE, attended="210"),
    # forwards (302 before the callee answers)
    Row("forward within NY", forward_to="302"),
    Row("forward to SF", forward_to="201"),
    Row("forward into HR", forward_to="250"),
    Row("no DID forwarded to a mobile", did=INTAKE, forward_to="13125550100"),
    Row("forward to the court clerk", forward_to="12135550150"),
    Row("forward then transfer", forward_to="302", transfers=("201",)),
    # ring groups: the member who answers is the callee
    Row("ring group, NY member", target="600", answered_by="301"),
    Row("ring group, litigation member", target="600", answered_by="210"),
    Row("ring group, HR member", target="600", answered_by="250"),
    Row("no DID ring group, litigation member", did=INTAKE, target="600", answered_by="210"),
    Row("SF ring group", target="601", answered_by="202"),
    # outbound (the firm's party is the caller)
    Row("outbound to NY", direction="outbound", caller="301", target="912125550100",
        trunk="trunk"),
    Row("outbound to SF", direction="outbound", caller="301", target="914155550100",
        trunk="trunk"),
    Row("outbound from litigation", direction="outbound", caller="210", target="912125550100",
        trunk="trunk"),
    Row("outbound to the court clerk", direction="outbound", caller="301",
        target="912135550150", trunk="trunk"),
    # internal
    Row("internal", direction="internal", caller="301", target="302", trunk=""),
    Row("internal to litigation", direction="internal", caller="301", target="210", trunk=""),
    Row("internal transferred to litigation", direction="internal", caller="301",
        target="302", trunk="", transfers=("211",)),
]

CALLER_HZ = 440
TONES = [1300, 1700, 2100, 2500]  # the callee (or member, or forward target), then targets


def explained(row: Row, policy_file: Path) -> Explanation:
    calls = CallsConfig(departments=DEPARTMENTS)
    policy = load_policy(policy_file, numbering_from(calls))
    joins = ((Join(row.forward_to, "forward"),) if row.forward_to else ()) + tuple(
        Join(t, "transfer") for t in row.transfers) + (
        (Join(row.attended, "transfer", attended=True),) if row.attended else ())
    facts = call_facts(
        row.direction, row.caller, row.target,  # type: ignore[arg-type]
        did=row.did, trunk=row.trunk, answered_by=row.answered_by, joins=joins,
        opted_out=(row.opt_out,) if row.opt_out else (),
    )
    return explain(facts, policy, row.at, hangup_during=row.hangup_during)


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


async def until(st: Stack, done: Any, limit_s: float = 30.0) -> None:
    """Advance virtual time until done() (or the call ended)."""
    waited = 0.0
    while waited < limit_s:
        if done() or not st.daemon.state.calls:
            return
        await st.advance(0.1, step=0.1)
        waited += 0.1
    raise TimeoutError("the call did not get there")


def prompt_to(st: Stack, label: str) -> dict[str, Any] | None:
    for call in st.daemon.state.calls.values():
        for prompt in call.prompts.values():
            if prompt["to"] == label:
                return dict(prompt)
    return None


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
        st.sim.send_dtmf(prompt["channel_id"], "9")
    else:
        st.sim.hangup(prompt["channel_id"])
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
    st.sim.attended_transfer(f"{call_id}-l2", consult.id, delay=0.0)
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


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


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
        st.sim.blind_transfer(f"{call_id}-l2", "250")
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
ROOT = Path(__file__).resolve().parents[1]


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


def talking_with(st: Stack, channel_id: str) -> list[Any]:
    ch = st.sim.channels[channel_id]
    return [c for c in st.sim.channels.values() if c.bridge_id and c.bridge_id == ch.bridge_id
            and c.id != channel_id and not c.destroyed and c.snoop_of is None]


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
