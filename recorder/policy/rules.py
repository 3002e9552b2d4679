"""`decide`: whether a call is recorded, by which rule, under which retention class. Pure.

Order (docs/consent.md has examples):
 1. The points of the call path are evaluated in order: route (direction, trunk, DID, caller,
    callee, time) -> department -> extension -> each later transfer/forward target. At each
    point the first rule in file order written for that point that matches gives its action.
 2. force and never lock the decision: no later point changes it. yes and no set it until a
    later point says otherwise; dontcare (or no matching rule) leaves it as it was. When no point
    decided, the policy's default action (yes unless configured) applies.
 3. A number of the call (caller, callee, DID or a transfer target) on the do-not-record list
    wins over everything, force included: metadata is kept, no audio.
 4. A party that opted out (the DTMF key during the announcement) is never recorded, force
    included; the call then continues, is routed, or ends as opt_out configures.
One exception to the lock in 2: a `never` rule at a transfer point applies even after an earlier
force. It forbids recording where the call has arrived (a privileged desk, say): that prohibition
is honoured from the join on, whatever the call was forced by on its way in. An earlier never is
never undone by a later force.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from recorder.common.direction import Direction
from recorder.common.numbers import is_extension, normalise
from recorder.policy.model import (
    Action,
    AfterOptOut,
    DoNotRecord,
    Match,
    NumberPattern,
    Point,
    Policy,
    Rule,
    TimeWindow,
    Via,
)


@dataclass(frozen=True)
class Join:
    """A party reached later by transfer or forward: an extension or an outside number."""

    target: str
    via: Via = "transfer"
    attended: bool = False  # consulted first (the target hears its prompt in that call)


@dataclass(frozen=True)
class CallFacts:
    """What policy needs to know about a call. Numbers as presented or dialled, raw.

    `extension`/`department` default to the firm's side of the call (the callee of inbound and
    internal calls, the caller of outbound ones; the member of a ring group who answered, when
    `answered_by` says so) and its department in verbatim.yaml.
    Parties are labelled "caller", "callee", then "target1", "target2"... for `joins`.
    Build one with `call_facts`, as the daemon and `verbatim explain` both do.
    """

    direction: Direction
    caller: str | None
    callee: str | None
    did: str | None = None
    trunk: str | None = None
    extension: str | None = None
    department: str | None = None
    answered_by: str | None = None  # the ring-group member who answered (then the callee)
    joins: tuple[Join, ...] = ()
    opted_out: frozenset[str] = field(default_factory=frozenset)  # party labels


def call_facts(
    direction: Direction,
    caller: str | None,
    callee: str | None,
    *,
    did: str | None = None,
    trunk: str | None = None,
    extension: str | None = None,
    department: str | None = None,
    answered_by: str | None = None,
    joins: Iterable[Join] = (),
    opted_out: Iterable[str] = (),
) -> CallFacts:
    """The one way the daemon (from a call's state) and `explain` (from its options) describe a
    call to policy: empty text is "not known", never a number that matches nothing."""

    def known(text: str | None) -> str | None:
        return text.strip() or None if text is not None else None

    return CallFacts(
        direction, known(caller), known(callee), did=known(did), trunk=known(trunk),
        extension=known(extension), department=known(department),
        answered_by=known(answered_by), joins=tuple(joins), opted_out=frozenset(opted_out),
    )


@dataclass(frozen=True)
class DecisionStep:
    """One point of the path: what it matched and what that did to the running decision."""

    point: Point
    subject: str
    rule: str | None
    action: Action | None
    effect: str
    result: Action | None  # the decision after this step (None: still undecided)
    line: int | None = None  # where the rule is written in the policy file


@dataclass(frozen=True)
class Decision:
    action: Action  # what the rules decided: force, yes, no or never
    record: bool  # after the do-not-record list and opt-outs
    retention: str
    decided_by: tuple[str, ...]  # e.g. ("rule 'Litigation'",), ("default",)
    reason: str
    steps: tuple[DecisionStep, ...] = ()
    locked: bool = False  # force/never: no later point can change the action
    do_not_record: str | None = None  # name of the matching do-not-record entry
    opted_out: tuple[str, ...] = ()  # parties that refused
    then: AfterOptOut | None = None  # after an opt-out: continue, route or end
    route_to: str | None = None


_THEN = {
    "continue": "the call goes on unrecorded",
    "route": "the call is routed (opt_out.route_to)",
    "end": "the call is ended",
}


def target_label(index: int) -> str:
    """The party label of joins[index]."""
    return f"target{index + 1}"


def e164_of(raw: str | None, policy: Policy) -> str | None:
    n = policy.numbering
    if raw is None or is_extension(raw, n.extension_pattern):
        return None
    return normalise(raw, default_region=n.default_region, strip_prefix=n.outside_line_prefix)


def firm_extension(facts: CallFacts, policy: Policy) -> str | None:
    if facts.extension is not None:
        return facts.extension
    if facts.answered_by is not None and facts.direction != "outbound":
        return facts.answered_by
    own = facts.caller if facts.direction == "outbound" else facts.callee
    return own if is_extension(own, policy.numbering.extension_pattern) else None


def _any(patterns: tuple[NumberPattern, ...], raw: str | None, policy: Policy) -> bool:
    e164 = e164_of(raw, policy)
    return any(p.matches(e164, raw) for p in patterns)


def in_window(w: TimeWindow, now: datetime) -> bool:
    local = now.astimezone(zoneinfo.ZoneInfo(w.zone))
    t, day = local.time().replace(tzinfo=None), local.weekday()
    if not w.crosses_midnight:
        return day in w.days and w.start <= t and (w.end is None or t < w.end)
    # A window crossing midnight belongs to the day it starts on.
    assert w.end is not None
    yesterday = (local - timedelta(days=1)).weekday()
    return (day in w.days and t >= w.start) or (yesterday in w.days and t < w.end)


@dataclass(frozen=True)
class _Point:
    point: Point
    subject: str
    extension: str | None = None
    department: str | None = None
    target: str | None = None
    via: Via | None = None


def _holds(m: Match, facts: CallFacts, at: _Point, policy: Policy, now: datetime) -> bool:
    # Each given field must hold; cheap checks first.
    return (
        (not m.directions or facts.direction in m.directions)
        and (not m.trunks or facts.trunk in m.trunks)
        and (not m.departments or at.department in m.departments)
        and (not m.vias or at.via in m.vias)
        and (
            not m.extensions
            or (at.extension is not None and _any(m.extensions, at.extension, policy))
        )
        and (not m.dids or _any(m.dids, facts.did, policy))
        and (not m.callers or _any(m.callers, facts.caller, policy))
        and (not m.callees or _any(m.callees, facts.callee, policy))
        and (not m.targets or (at.target is not None and _any(m.targets, at.target, policy)))
        and (not m.times or any(in_window(w, now) for w in m.times))
    )


def _points(facts: CallFacts, policy: Policy) -> Iterable[_Point]:
    n = policy.numbering
    route = [facts.direction, f"from {facts.caller or 'withheld'}", f"to {facts.callee or '?'}"]
    route += [f"DID {facts.did}"] if facts.did else []
    route += [f"trunk {facts.trunk}"] if facts.trunk else []
    extension = firm_extension(facts, policy)
    department = facts.department or (n.departments.get(extension) if extension else None)
    yield _Point("route", " ".join(route), extension, department)
    if department is not None:
        yield _Point("department", f"department {department}", extension, department)
    if extension is not None:
        yield _Point("extension", f"extension {extension}", extension, department)
    for join in facts.joins:
        internal = is_extension(join.target, n.extension_pattern)
        ext = join.target if internal else None
        dept = n.departments.get(join.target) if internal else None
        subject = f"{join.via} to {join.target}" + (f" ({dept})" if dept else "")
        yield _Point("transfer", subject, ext, dept, join.target, join.via)


def _rule_at(at: _Point, facts: CallFacts, policy: Policy, now: datetime) -> Rule | None:
    for rule in policy.rules:
        if rule.at == at.point and _holds(rule.match, facts, at, policy, now):
            return rule
    return None


def _listed(facts: CallFacts, policy: Policy) -> tuple[DoNotRecord, str] | None:
    # The caller is checked even when withheld (an entry may list `withheld`); the others only
    # when there is a number.
    others = (facts.callee, facts.did, *(j.target for j in facts.joins))
    for entry in policy.do_not_record:
        for raw in (facts.caller, *(n for n in others if n)):
            if _any(entry.numbers, raw, policy):
                return entry, raw or "a withheld caller"
    return None


def decide(facts: CallFacts, policy: Policy, now: datetime) -> Decision:
    """The recording decision for the whole path in `facts` (all joins so far), at `now`."""
    if now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    action: Action | None = None
    rule_by: Rule | None = None
    steps: list[DecisionStep] = []
    for at in _points(facts, policy):
        rule = _rule_at(at, facts, policy, now)
        name = rule.name if rule else None
        if rule is None:
            effect = "no rule matched"
        elif action == "force" and at.point == "transfer" and rule.action == "never":
            by = rule_by.name if rule_by else "?"
            effect = f"never (locked): overrides force by rule '{by}' where the call arrived"
            action, rule_by = rule.action, rule
        elif rule_by is not None and action in ("force", "never"):
            effect = f"ignored: {action} by rule '{rule_by.name}' cannot be overridden"
        elif rule.action == "dontcare":
            effect = "dontcare: left as it was"
        else:
            locks = rule.action in ("force", "never")
            effect = f"{rule.action}" + (" (locked)" if locks else "")
            action, rule_by = rule.action, rule
        line = rule.line or None if rule else None
        steps.append(
            DecisionStep(
                at.point, at.subject, name, rule.action if rule else None, effect, action, line
            )
        )

    locked = action in ("force", "never")
    if action is None or rule_by is None:
        final: Action = policy.default_action
        decided_by: tuple[str, ...] = ("default",)
        reason = f"no rule decided; the policy default is {final}"
        retention = policy.retention
    else:
        final = action
        decided_by = (f"rule '{rule_by.name}'",)
        lock = "; no later point can override it" if locked else ""
        reason = f"{final} by rule '{rule_by.name}' at {rule_by.at}{lock}"
        retention = rule_by.retention or policy.retention
    base = Decision(
        final, final in ("force", "yes"), retention, decided_by, reason, tuple(steps), locked
    )

    listed = _listed(facts, policy)
    if listed is not None:
        entry, number = listed
        return replace(
            base,
            record=False,
            decided_by=(f"do_not_record '{entry.name}'",),
            reason=f"{number} is on the do-not-record list ('{entry.name}'): metadata only, "
            f"no audio, whatever the rules say ({final})",
            retention=entry.retention or policy.retention,
            do_not_record=entry.name,
        )
    labels = ["caller", "callee", *(target_label(i) for i in range(len(facts.joins)))]
    refused = tuple(label for label in labels if label in facts.opted_out)
    if refused and base.record:  # refusing a call that is not recorded changes nothing
        o = policy.opt_out
        then = o.when_forced if final == "force" else o.then
        also = f" although {base.decided_by[0]} forces recording" if final == "force" else ""
        return replace(
            base,
            record=False,
            decided_by=(*base.decided_by, "opt-out"),
            reason=f"{', '.join(refused)} opted out{also}: not recorded; {_THEN[then]}",
            opted_out=refused,
            then=then,
            route_to=o.route_to if then == "route" else None,
        )
    return base
