"""Consent in the call flow: the policy's decision, who hears which announcement, and opt-out.

The rules themselves are recorder.policy's (pure): this module asks `decide` at the start of a
call, plays what `announcements_at_start` says — the caller's prompt before anything else, the
callee's (where all-party applies) when it answers and before it joins the recorded bridge, so
no party's audio is recorded before its announcement has finished — and listens for the opt-out
key while a prompt plays. A refusal is decided again by policy: the call goes on unrecorded, is
routed, or ends; nothing of the refusing party is recorded. Each prompt (finished, interrupted
or refused) becomes a consent audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from recorder.model import commands as cmd
from recorder.model.flow import Step, stop_recordings
from recorder.model.records import CallDecision, Prompt
from recorder.model.state import Call, Leg
from recorder.policy import (
    Announcement,
    CallFacts,
    Decision,
    Party,
    Policy,
    announcements_at_start,
    announcements_on_answer,
    call_facts,
    consent_row,
    decide,
    jurisdiction_of,
    mode_of,
)


def facts_of(call: Call) -> CallFacts:
    """The call as policy sees it: built by `call_facts`, as `verbatim explain` builds its own,
    from the call's path so far (joins, the ring-group member who answered, opt-outs)."""
    return call_facts(
        call.direction,  # type: ignore[arg-type]  # one of DIRECTIONS, checked at start
        call.caller_number,
        call.target,
        did=call.did,
        trunk=call.trunk,
        department=call.given_department,
        answered_by=call.answered_by,
        joins=call.joins,
        opted_out=call.opted_out,
    )


def decision_of(call: Call, policy: Policy) -> Decision:
    """Decide for the call's path now. Time windows are read at the call's start, as `explain
    --at` reads them: a call does not change its rule by running past 18:00."""
    return decide(facts_of(call), policy, call.started_at)


def remember(call: Call, decision: Decision) -> CallDecision:
    call.record = decision.record
    kept = call.decision = CallDecision(
        action=decision.action,
        record=decision.record,
        retention=decision.retention,
        decided_by=tuple(decision.decided_by),
        reason=decision.reason,
        then=decision.then,
        route_to=decision.route_to,
        do_not_record=decision.do_not_record,
    )
    return kept


def decide_at_start(s: Step, at: datetime) -> list[Announcement]:
    """Decide the call's recording and return the announcements due at its start."""
    call, policy = s.call, s.settings.policy
    assert policy is not None
    decision = decision_of(call, policy)
    detail: dict[str, Any] = remember(call, decision).detail()
    if not decision.record:
        call.unrecorded_since = at
    s.record("consent.decision", call.caller_channel, **detail)
    s.log("consent.decision", record=decision.record, action=decision.action,
          decided_by=list(decision.decided_by), retention=decision.retention)
    return announcements_at_start(
        Party("caller", call.caller_number), Party("callee", call.target), policy,
        recording=decision.record,
    )


def start_prompt(
    s: Step, channel_id: str, ann: Announcement, *, leg_id: str | None = None,
    number: str | None = None,
) -> str:
    """Play `ann` to one channel (the party's own; a bridge is never used, so a prompt is
    heard only by whom it is for and never lands in a recording); its playback id."""
    playback_id = note_prompt(s, channel_id, ann, leg_id=leg_id, number=number)
    s.add(cmd.Play(s.call.call_id, channel_id, playback_id, ann.media))
    return playback_id


def note_prompt(
    s: Step, channel_id: str, ann: Announcement, *, leg_id: str | None = None,
    number: str | None = None,
) -> str:
    """Keep a prompt about to be played (by ARI, or by an AGI hook) until its audit row."""
    call = s.call
    playback_id = f"{call.call_id}-p{call.next_playback}"
    call.next_playback += 1
    call.prompts[playback_id] = Prompt(
        playback_id=playback_id, channel_id=channel_id, leg=leg_id or channel_id,
        number=number if number is not None else _number_of(call, ann.to),
        started_at=s.at, to=ann.to, when=ann.when, mode=ann.mode, language=ann.language,
        prompt=ann.prompt, media=ann.media, opt_out_dtmf=ann.opt_out_dtmf,
    )
    return playback_id


def _number_of(call: Call, label: str) -> str | None:
    return call.caller_number if label == "caller" else call.target


def due_for(call: Call, label: str, when: str) -> Announcement | None:
    return next((a for a in call.announcements if a.to == label and a.when == when), None)


def audit(s: Step, prompt: Prompt, played: str, dtmf: str | None = None,
          opted_out: bool = False) -> None:
    """The consent row of a prompt that just ended (finished, interrupted or refused)."""
    call, policy = s.call, s.settings.policy
    if call.prompts.pop(prompt.playback_id, None) is None or policy is None:
        return
    label = prompt.to
    ann = prompt.announcement
    if played == "finished" and (call.heard.get(label) != "all-party"):
        call.heard[label] = ann.mode
    number = prompt.number
    row = consent_row(
        call_id=call.call_id, asterisk_id=call.asterisk_id, channel_id=prompt.channel_id,
        party=label, jurisdiction=jurisdiction_of(number, policy),
        governing_mode=mode_of(present_parties(call), policy),
        decision=decision_of(call, policy), announcement=ann,
        started_at=prompt.started_at, ended_at=s.at, played=played,  # type: ignore[arg-type]
        dtmf=dtmf, opted_out=opted_out,
    )
    s.add(cmd.SaveConsent(call.call_id, (row,)))
    s.record(f"consent.{played}", prompt.channel_id, party=label, media=ann.media,
             mode=ann.mode, dtmf=dtmf)


def consent_failed(s: Step, channel_id: str, media: str, error: str) -> None:
    """An announcement Asterisk could not play, its party still there: stored for the call's
    story, and an error for ops (a prompt file to mend before the next call)."""
    s.record("consent.failed", channel_id, media=media, error=error)
    s.log("consent.failed", "error", channel_id=channel_id, media=media, error=error)


def present_parties(call: Call) -> list[Party]:
    """The parties on the call now (not the Local conduits, not who left or was replaced)."""
    parties = []
    for leg in call.legs.values():
        if leg.state == "gone" or leg.role == "local" or leg.stasis.replaced_by is not None:
            continue
        if leg.answered_at is None and leg.role == "callee":
            continue
        label = leg.party or ("caller" if leg.role == "caller" else "callee")
        number = call.caller_number if label == "caller" else (leg.number or call.target)
        parties.append(Party(label, number, heard=call.heard.get(label)))
    return parties


def announce_join(s: Step, leg: Leg) -> bool:
    """A transfer target answered: play what policy requires to it and to everyone present
    (all of them when the strictest rule became all-party). True if it must wait for its own
    announcement before joining."""
    call, policy = s.call, s.settings.policy
    if policy is None or not call.record:
        return False
    before = [p for p in present_parties(call) if p.label != leg.party]
    newcomer = Party(leg.party or "target", leg.number, heard=None)
    plays = announcements_on_answer(before, newcomer, policy,
                                    recorded_before=not call.recording_due())
    waits = False
    for ann in plays:
        if ann.to == newcomer.label:
            start_prompt(s, leg.channel_id, ann, leg_id=leg.channel_id, number=leg.number)
            waits = True
            continue
        for other in call.legs.values():  # a present party hears it on its own channel
            if (other.party or ("caller" if other.role == "caller" else "callee")) == ann.to \
                    and other.state != "gone" and other.stasis.replaced_by is None:
                start_prompt(s, other.channel_id, ann, leg_id=other.channel_id)
    if plays:
        s.log("consent.on_join", channel_id=leg.channel_id, prompts=[str(a) for a in plays])
    return waits


def announce_linked(s: Step, joining: list[Party]) -> None:
    """An attended transfer joined this call's parties with `joining` (the other call's): each
    call plays what policy requires to its own parties (the other call does the same for its
    own), so a party who joins by attended transfer is handled like any joining party."""
    call, policy = s.call, s.settings.policy
    if policy is None or not call.record:
        return
    for newcomer in joining:
        plays = announcements_on_answer(present_parties(call), newcomer, policy,
                                        recorded_before=not call.recording_due())
        for ann in plays:
            if ann.to == newcomer.label:
                continue  # the newcomer hears it in its own call
            for leg in call.legs.values():
                label = leg.party or ("caller" if leg.role == "caller" else "callee")
                if label == ann.to and leg.state != "gone" and leg.stasis.replaced_by is None:
                    start_prompt(s, leg.channel_id, ann, leg_id=leg.channel_id)
        if plays:
            s.log("consent.on_join", joining=newcomer.number, prompts=[str(a) for a in plays])


def prompt_playing_to(call: Call, channel_id: str) -> Prompt | None:
    return next((p for p in call.prompts.values() if p.channel_id == channel_id), None)


def refuse(s: Step, prompt: Prompt, digit: str | None, channel_id: str) -> Decision:
    """The party of `prompt` pressed the opt-out key during it (either mode): policy decides
    again, nothing of the call is recorded from now, the prompt's audit row says so. The
    caller then acts on `Decision.then` (continue, route or end) as its mode can."""
    call, policy = s.call, s.settings.policy
    assert policy is not None  # prompts come from policy
    label = prompt.to
    call.opted_out.append(label)
    decision = decision_of(call, policy)
    remember(call, decision)
    call.record = False
    call.unrecorded_since = call.unrecorded_since or s.at
    stop_recordings(s)  # a joining party refused: nothing more of the call is kept
    audit(s, prompt, "interrupted", dtmf=digit, opted_out=True)
    # a party's choice, not a fault: info, and an event row for the call's story
    s.log("consent.opted_out", channel_id=channel_id, party=label, then=decision.then)
    return decision


def opt_out(s: Step, prompt: Prompt, digit: str | None, channel_id: str,
            end: Callable[[], None], route: Callable[[str], None],
            go_on: Callable[[], None]) -> None:
    """The one opt-out path of both modes: `refuse`, then what policy says next, each done
    the way the party's mode can (Stasis mode hangs up or redirects the channel itself; hook
    mode answers its AGI session and the dialplan acts)."""
    decision = refuse(s, prompt, digit, channel_id)
    if decision.then == "end":
        s.call.outcome = "rejected"
        end()
    elif decision.then == "route" and decision.route_to:
        route(decision.route_to)
    else:
        go_on()
