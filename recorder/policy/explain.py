"""`explain`: what policy does with a described call, stage by stage. Pure; the CLI prints it.

A stage is the call as it starts, then one per transfer/forward. On a transfer or forward the
firm's side of the call (the callee of inbound and internal calls, the caller of outbound ones,
later the previous target) leaves and the target joins; an attended join keeps everyone.
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
    announcements_on_join,
    mode_of,
)
from recorder.policy.jurisdiction import Jurisdiction, jurisdiction_of, strictest
from recorder.policy.model import Mode, Policy
from recorder.policy.rules import CallFacts, Decision, Step, decide, target_label
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
    wait: Wait | None = None  # time before the parties can talk, when prompt lengths are known

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def _firm_side(facts: CallFacts) -> str:
    return "caller" if facts.direction == "outbound" else "callee"


def _recording_before(facts: CallFacts, new: set[str], policy: Policy, at: datetime) -> bool:
    # Whether the stage's announcements play: opt-outs pressed during them do not stop them.
    return decide(replace(facts, opted_out=facts.opted_out - new), policy, at).record


def explain(
    facts: CallFacts,
    policy: Policy,
    at: datetime,
    *,
    prompts: Mapping[str, str | None] | None = None,
) -> Explanation:
    """Explain `facts` at `at`. `prompts` (prompt id -> the opt-out key its words announce, from
    the prompts manifest) turns missing or mismatched prompt files into warnings."""
    heard: dict[str, Mode] = {}

    def party(label: str, number: str | None) -> Party:
        return Party(label, number, heard.get(label))

    def stage(title: str, f: CallFacts, present: list[Party], anns: list[Announcement]) -> Stage:
        for a in anns:
            heard[a.to] = strictest([a.mode, heard.get(a.to, "one-party")])
        views = tuple((p.label, jurisdiction_of(p.number, policy)) for p in present)
        return Stage(title, decide(f, policy, at), views, mode_of(present, policy), tuple(anns))

    start = replace(facts, joins=())
    caller, callee = party("caller", facts.caller), party("callee", facts.callee)
    present = [caller, callee]
    # The caller may refuse during its prompt, before the callee answers: the callee's prompt
    # then plays only if the call is still to be recorded.
    first = announcements_at_start(
        caller, callee, policy, recording=_recording_before(start, {"caller", "callee"}, policy, at)
    )
    then = announcements_at_start(
        caller, callee, policy, recording=_recording_before(start, {"callee"}, policy, at)
    )
    anns = [a for a in first if a.to == "caller"] + [a for a in then if a.to == "callee"]
    stages = [stage("start", start, present, anns)]
    leaving = _firm_side(facts)
    for i, join in enumerate(facts.joins):
        label = target_label(i)
        f = replace(facts, joins=facts.joins[: i + 1])
        before = [party(p.label, p.number) for p in present if join.attended or p.label != leaving]
        new = party(label, join.target)
        recording = _recording_before(f, {label}, policy, at)
        anns = announcements_on_join(before, new, policy, recording=recording)
        present = [*before, new]
        kind = f"attended {join.via}" if join.attended else join.via
        stages.append(stage(f"{kind} to {join.target} ({label})", f, present, anns))
        if not join.attended:
            leaving = label
    where = str(policy.path) if policy.path else "built-in defaults"
    return Explanation(facts, at, where, tuple(stages), tuple(_warnings(stages, policy, prompts)))


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
        "time_before_talk": None if e.wait is None else e.wait.json(),
    }


def _table(rows: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def _rule(step: Step) -> str:
    if step.rule is None:
        return "-"
    return f"rule '{step.rule}'" + (f" (line {step.line})" if step.line else "")


def render(e: Explanation) -> str:
    f = e.facts
    lines = [
        f"Call       {f.direction} from {f.caller or 'withheld'} to {f.callee or '?'}"
        + (f" (DID {f.did})" if f.did else "")
        + (f" (trunk {f.trunk})" if f.trunk else ""),
        f"At         {e.at.isoformat()} ({e.at.strftime('%a')})",
        f"Policy     {e.policy}",
    ]
    if f.opted_out:
        lines.append(f"Opted out  {', '.join(sorted(f.opted_out))}")
    if e.wait is not None:
        lines.append(f"Time before the parties can talk  {e.wait}")
    for s in e.stages:
        d = s.decision
        verdict = "RECORD" if d.record else "DO NOT RECORD"
        lines += ["", s.title.capitalize(), f"  Decision   {verdict} ({d.action}): {d.reason}"]
        lines.append(f"  Decided by {', '.join(d.decided_by)}; retention class {d.retention}")
        if d.route_to:
            lines.append(f"  Route to   {d.route_to}")
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
    lines += [f"\nwarning: {w}" for w in e.warnings]
    return "\n".join(lines) + "\n"
