"""`explain`: what policy does with a described call, stage by stage. Pure; the CLI prints it.

A stage is the call as it starts, then one per transfer/forward. On a transfer or forward the
firm's side of the call (the callee of inbound and internal calls, the caller of outbound ones,
later the previous target) leaves and the target joins; after an attended transfer too (the
firm's party consulted the target, then connected it and left: its announcement is played in
the consultation call).
Announcements of a stage are those due when it begins; an opt-out pressed during one still lets
it play, and from then on nothing is recorded or announced (a caller who refuses before the
callee answers spares the callee its prompt).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from recorder.policy.announce import (
    Announcement,
    Party,
    announcements_at_start,
    announcements_on_answer,
    mode_of,
)
from recorder.policy.jurisdiction import Jurisdiction, jurisdiction_of, strictest
from recorder.policy.model import Mode, Policy
from recorder.policy.rules import CallFacts, Decision, DecisionStep, decide, target_label
from recorder.policy.timing import Wait


@dataclass(frozen=True)
class Stage:
    title: str  # "start", "transfer to +12125550100"
    decision: Decision
    parties: tuple[tuple[str, Jurisdiction], ...]  # (label, jurisdiction) of those present
    mode: Mode  # the governing rule among them
    announcements: tuple[Announcement, ...]


@dataclass(frozen=True)
class Explanation:
    facts: CallFacts
    at: datetime
    policy: str  # the policy file, or "built-in defaults"
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = ()
    hung_up: str | None = None  # the party that hung up during its announcement: the call ends
    wait: Wait | None = None  # time before the parties can talk, when prompt lengths are known

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def _firm_side(facts: CallFacts) -> str:
    return "caller" if facts.direction == "outbound" else "callee"


def explain(
    facts: CallFacts,
    policy: Policy,
    at: datetime,
    *,
    prompts: Mapping[str, str | None] | None = None,
    hangup_during: str | None = None,
) -> Explanation:
    """Explain `facts` at `at`. `prompts` (prompt id -> the opt-out key its words announce, from
    the prompts manifest) turns missing or mismatched prompt files into warnings.
    `hangup_during` ("caller" or "callee") hangs that party up during its announcement."""
    heard: dict[str, Mode] = {}
    pressed: set[str] = set()  # opt-outs pressed so far (facts.opted_out, as prompts play)
    stages: list[Stage] = []

    def party(label: str, number: str | None) -> Party:
        return Party(label, number, heard.get(label))

    def records(f: CallFacts, also: frozenset[str] = frozenset()) -> bool:
        return decide(replace(f, opted_out=frozenset(pressed) | also), policy, at).record

    def stage(title: str, f: CallFacts, present: list[Party], anns: list[Announcement]) -> bool:
        """Add the stage; False when a party hangs up during one of its announcements."""
        played = []
        for a in anns:
            played.append(a)
            if a.to == hangup_during:
                break
            heard[a.to] = strictest([a.mode, heard.get(a.to, "one-party")])
            if a.to in facts.opted_out:
                pressed.add(a.to)
        views = tuple((p.label, jurisdiction_of(p.number, policy)) for p in present)
        decision = decide(replace(f, opted_out=frozenset(pressed)), policy, at)
        stages.append(Stage(title, decision, views, mode_of(present, policy), tuple(played)))
        return len(played) == len(anns) or played[-1].to != hangup_during

    joins = facts.joins
    start = replace(facts, joins=(), answered_by=None)
    caller, callee = party("caller", facts.caller), party("callee", facts.callee)
    # Who answers the dialled call: the callee; a ring group's member (a stage of its own); or,
    # when the callee forwards before answering, the forward's target (the first join).
    callee_answers = facts.answered_by is None and not (joins and joins[0].via == "forward")
    anns = [a for a in announcements_at_start(caller, callee, policy, recording=records(start))
            if a.to == "caller"]
    # A caller who refuses during its prompt spares the callee its own.
    refused = frozenset({"caller"} & facts.opted_out if anns and hangup_during != "caller"
                        else ())
    if callee_answers:
        anns += [a for a in announcements_at_start(
            caller, callee, policy, recording=records(start, refused)) if a.to == "callee"]
    going = stage("start", start, [caller, callee], anns)
    if going and facts.answered_by is not None:
        f = replace(start, answered_by=facts.answered_by)
        member = party("callee", facts.answered_by)
        anns = (announcements_on_answer([party("caller", facts.caller)], member, policy,
                                        recorded_before=stages[-1].decision.record)
                if records(f) else [])
        going = stage(f"answered by {facts.answered_by} (ring group {facts.callee})", f,
                      [party("caller", facts.caller), member], anns)
    present = [party("caller", facts.caller), party("callee", facts.answered_by or facts.callee)]
    firm, dialled = _firm_side(facts), "callee"
    for i, join in enumerate(joins if going else ()):
        label = target_label(i)
        f = replace(facts, joins=joins[: i + 1])
        leaving = dialled if join.via == "forward" else firm
        before = [party(p.label, p.number) for p in present if p.label != leaving]
        new = party(label, join.target)
        # a party that forwards before answering never hears a prompt
        answers = not (i + 1 < len(joins) and joins[i + 1].via == "forward")
        anns = (announcements_on_answer(before, new, policy,
                                        recorded_before=stages[-1].decision.record)
                if answers and records(f) else [])
        present = [*before, new]
        if leaving == firm:
            firm = label
        dialled = label
        kind = f"attended {join.via}" if join.attended else join.via
        if not stage(f"{kind} to {join.target} ({label})", f, present, anns):
            break
    where = str(policy.path) if policy.path else "built-in defaults"
    warnings = _warnings(stages, policy, prompts)
    hung = hangup_during if any(
        a.to == hangup_during for st in stages for a in st.announcements) else None
    if hangup_during is not None and hung is None:
        warnings.append(f"the {hangup_during} hears no announcement on this call: "
                        "hanging up during one changes nothing here")
    return Explanation(facts, at, where, tuple(stages), tuple(warnings), hung)


def _warnings(
    stages: list[Stage], policy: Policy, prompts: Mapping[str, str | None] | None
) -> list[str]:
    if prompts is None:
        return []
    out: list[str] = []
    for a in (a for s in stages for a in s.announcements):
        if a.prompt not in prompts:
            message = f"prompt {a.prompt} is not in the prompts manifest"
        elif prompts[a.prompt] != policy.opt_out.dtmf:
            said = prompts[a.prompt] or "no key"
            message = (
                f"prompt {a.prompt} announces opt-out key {said}, the policy's is "
                f"{policy.opt_out.dtmf or 'none'}: rebuild the prompts (verbatim prompts build)"
            )
        else:
            continue
        if message not in out:
            out.append(message)
    return out


# -- output -----------------------------------------------------------------------------------


def to_json(e: Explanation) -> dict[str, Any]:
    def jur(label: str, j: Jurisdiction) -> dict[str, Any]:
        return {"party": label, **asdict(j), "place": j.place}

    return {
        "call": {**asdict(e.facts), "opted_out": sorted(e.facts.opted_out)},
        "at": e.at.isoformat(),
        "policy": e.policy,
        "stages": [
            {
                "stage": s.title,
                "record": s.decision.record,
                "decision": asdict(s.decision),
                "mode": s.mode,
                "parties": [jur(label, j) for label, j in s.parties],
                "announcements": [asdict(a) for a in s.announcements],
            }
            for s in e.stages
        ],
        "warnings": list(e.warnings),
        "hung_up": e.hung_up,
        "time_before_talk": None if e.wait is None else e.wait.json(),
    }


def _table(rows: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def _rule(step: DecisionStep) -> str:
    if step.rule is None:
        return "-"
    return f"rule '{step.rule}'" + (f" (line {step.line})" if step.line else "")


def decision_lines(d: Decision) -> list[str]:
    """A decision as `explain` prints it (the call's page shows the stored one the same way)."""
    verdict = "RECORD" if d.record else "DO NOT RECORD"
    lines = [
        f"Decision   {verdict} ({d.action}): {d.reason}",
        f"Decided by {', '.join(d.decided_by)}; retention class {d.retention}",
    ]
    if d.route_to:
        lines.append(f"Route to   {d.route_to}")
    return lines


def render(e: Explanation) -> str:
    f = e.facts
    lines = [
        f"Call       {f.direction} from {f.caller or 'withheld'} to {f.callee or '?'}"
        + (f" (DID {f.did})" if f.did else "")
        + (f" (trunk {f.trunk})" if f.trunk else "")
        + (f", answered by {f.answered_by}" if f.answered_by else ""),
        f"At         {e.at.isoformat()} ({e.at.strftime('%a')})",
        f"Policy     {e.policy}",
    ]
    if f.opted_out:
        lines.append(f"Opted out  {', '.join(sorted(f.opted_out))}")
    if e.wait is not None:
        lines.append(f"Time before the parties can talk  {e.wait}")
    for s in e.stages:
        d = s.decision
        lines += ["", s.title.capitalize(), *(f"  {line}" for line in decision_lines(d))]
        lines.append("  Path")
        path = [[st.point, st.subject, _rule(st), st.effect] for st in d.steps]
        lines += _table(path, "    ")
        lines.append("  Parties")
        parties = [
            [label, j.subject or "withheld", j.place, j.mode, f"{j.source}: {j.detail}"]
            for label, j in s.parties
        ]
        lines += _table(parties, "    ")
        lines.append(f"  Governing  {s.mode} (the strictest of the parties present)")
        if s.announcements:
            lines.append("  Announcements")
            key = [
                f"opt-out key {a.opt_out_dtmf}" if a.opt_out_dtmf else "no opt-out"
                for a in s.announcements
            ]
            rows = [[a.to, a.when, a.media, k] for a, k in zip(s.announcements, key, strict=True)]
            lines += _table(rows, "    ")
        else:
            lines.append("  Announcements  none")
    if e.hung_up:
        lines += ["", f"The {e.hung_up} hangs up during its announcement: the call ends there, "
                  "and nothing of it is recorded."]
    lines += [f"\nwarning: {w}" for w in e.warnings]
    return "\n".join(lines) + "\n"
