"""Recording policy and consent: what is recorded, under which law, and who must hear what.

API NOTE FOR THE CALL MODEL (all pure: no I/O, no clock; pass `now` in)
------------------------------------------------------------------------
Load once at start, next to the config (raises PolicyError, a ConfigError, on a bad file):

    policy = load_policy(config.calls.policy_file, numbering_from(config.calls))

When a call arrives (StasisStart), before anything is played:

    facts = CallFacts(direction, caller=raw_caller, callee=raw_target, did=..., trunk=...,
                      extension=call.extension, department=call.department)
    decision = decide(facts, policy, now)          # -> Decision
        .record      whether to record at all (False: keep the metadata, no audio)
        .action      force | yes | no | never (what the rules said)
        .retention   retention class name to store on the call
        .decided_by  ("rule 'Litigation'",) / ("default",) / ("do_not_record 'Court'",)
        .reason      one sentence for logs and the audit
    plays = announcements_at_start(Party("caller", raw_caller), Party("callee", raw_target),
                                   policy, recording=decision.record)   # -> list[Announcement]
        Announcement(to="caller"|"callee", when="before-bridge"|"on-answer", mode, language,
                     prompt="consent-all-party-en", media="sound:verbatim/consent-all-party-en",
                     opt_out_dtmf="9" or None)
    Play each "before-bridge" one to the caller before the bridge, each "on-answer" one to the
    callee when it answers and before it joins the recorded bridge: no party's audio may be
    recorded before its announcement has finished.

A DTMF equal to `opt_out_dtmf` during a party's announcement: add its label to
`facts.opted_out` and `decide` again. The Decision then has record=False, opted_out=(label,),
then = "continue" | "route" | "end" and route_to ("context,exten,priority") for "route".
Stop any recording and keep no audio of that party (force included). A caller who refuses
before the callee answers means the callee's "on-answer" prompt is no longer due (nothing is
recorded); `explain` shows exactly that sequence.

When a party joins by transfer or forward:

    facts = replace(facts, joins=(*facts.joins, Join(target, via="transfer"|"forward")))
    decision = decide(facts, policy, now)          # the new point may change it (unless locked)
    plays = announcements_on_join(present_parties, Party("target1", target),
                                  policy, recording=decision.record)
    `present_parties` are the Party(label, number, heard=<strictest mode already heard>) still
    on the call; the result lists every present party that must hear the all-party prompt now
    (all of them when the strictest rule became all-party, else only the newcomer).

Other pure helpers: `jurisdiction_of(number_or_extension, policy) -> Jurisdiction` (state,
region, mode, source override|extension|geocoder|region|default, detail), `strictest(modes)`,
`mode_of(parties, policy)`, `explain(facts, policy, at) -> Explanation` (what
`verbatim explain` prints).

Audit (I/O, asyncpg): `consent_row(...) -> ConsentRow` (pure builder), then
`await add_consent_rows(pool, rows)` and `await consent_rows(pool, call_id)`; table
consent_audit, migration 0003_consent.

Order of precedence, prompts and the state table: docs/consent.md and
config/policy.example.yaml.
"""

from recorder.policy.announce import (
    Announcement,
    Party,
    announcements_at_start,
    announcements_on_answer,
    announcements_on_join,
    announcements_on_start,
    language_for,
    mode_of,
    prompt_id,
)
from recorder.policy.audit import ConsentRow, add_consent_rows, consent_row, consent_rows
from recorder.policy.explain import Explanation, Stage, explain
from recorder.policy.jurisdiction import Jurisdiction, jurisdiction_of, strictest
from recorder.policy.loader import load_policy, numbering_from
from recorder.policy.model import Numbering, Policy, PolicyError
from recorder.policy.rules import CallFacts, Decision, DecisionStep, Join, call_facts, decide

__all__ = [
    "Announcement",
    "CallFacts",
    "ConsentRow",
    "Decision",
    "DecisionStep",
    "Explanation",
    "Join",
    "Jurisdiction",
    "Numbering",
    "Party",
    "Policy",
    "PolicyError",
    "Stage",
    "add_consent_rows",
    "announcements_at_start",
    "announcements_on_answer",
    "announcements_on_join",
    "announcements_on_start",
    "call_facts",
    "consent_row",
    "consent_rows",
    "decide",
    "explain",
    "jurisdiction_of",
    "language_for",
    "load_policy",
    "mode_of",
    "numbering_from",
    "prompt_id",
    "strictest",
]
