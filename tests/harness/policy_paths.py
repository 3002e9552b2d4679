"""The call paths of the one-decision-path tests: a policy, and a table of rows (each a call
path with its parties, numbers and expected decision) run through `verbatim explain` and the
daemon on the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from recorder.config import CallsConfig
from recorder.policy import Explanation, Join, call_facts, explain, load_policy
from recorder.policy.loader import numbering_from
from tests.harness.stack import Stack

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


async def until(st: Stack, done: Any, limit_s: float = 30.0) -> None:
    """Advance virtual time until done() (or the call ended)."""
    waited = 0.0
    while waited < limit_s:
        if done() or not st.daemon.state.calls:
            return
        await st.advance(0.1, step=0.1)
        waited += 0.1
    raise TimeoutError("the call did not get there")


ROOT = Path(__file__).resolve().parents[2]


def talking_with(st: Stack, channel_id: str) -> list[Any]:
    ch = st.sim.channels[channel_id]
    return [c for c in st.sim.channels.values() if c.bridge_id and c.bridge_id == ch.bridge_id
            and c.id != channel_id and not c.destroyed and c.snoop_of is None]
