"""A call's story in words for people: each event the call model records as a sentence, each
party's consent as what they heard and why, the decision as `verbatim explain` says it.

Pure functions of rows (no I/O but the prompts manifest, read once). Every value is shown as
text: a missing one is left out of the sentence, never printed as a Python repr.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from recorder.policy import Decision
from recorder.policy.explain import decision_lines
from recorder.policy.prompts import DEFAULT_DIRECTORY, PromptsError, read_manifest
from recorder.policy.states import STATES


@dataclass(frozen=True)
class Names:
    """How the page names a call's parties (by channel id) and recordings (by name)."""

    parties: Mapping[str, str] = field(default_factory=dict)
    segments: Mapping[str, str] = field(default_factory=dict)

    def party(self, channel_id: Any) -> str:
        if not channel_id:
            return ""
        return self.parties.get(str(channel_id), "a connection of the call")

    def segment(self, name: Any) -> str:
        return self.segments.get(str(name), f"recording {name}") if name else "a recording"


def text(value: Any) -> str:
    """A detail value as words: lists joined, nothing for a missing value."""
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(text(v) for v in value if text(v))
    if isinstance(value, dict):
        return "; ".join(f"{k} {text(v)}" for k, v in value.items() if text(v))
    return str(value)


def seconds(ms: float | None) -> str:
    """7.5 s, 212 s: whole seconds without a decimal."""
    if ms is None:
        return ""
    value = round(ms / 1000, 1)
    return f"{value:g} s"


_DIALSTATUS: Final = {
    "BUSY": "was busy", "NOANSWER": "did not answer", "CHANUNAVAIL": "could not be reached",
    "CONGESTION": "could not be reached (congestion)", "CANCEL": "stopped ringing (cancelled)",
    "DONTCALL": "refused the call", "INVALIDARGS": "could not be dialled",
}  # fmt: skip
_BY: Final = {
    "dtmf": "with a keypad code", "agi": "with the phone's feature code",
    "applicationmap": "with the phone's feature code",
}  # fmt: skip
_WHY: Final = {
    "transfer": "the transfer", "attended transfer": "the attended transfer",
    "forward": "the forward", "ring group": "a ring group member answering",
    "answer": "the answer", "dial": "the dial",
}  # fmt: skip


def _by(detail: Mapping[str, Any], who: str) -> str:
    by = str(detail.get("by") or "")
    if by.startswith("api:"):
        return f"through the API ({by[4:]})"
    how = _BY.get(by, f"({by})" if by else "")
    return " ".join(x for x in (f"by {who}" if who else "", how) if x)


def _decided(d: Mapping[str, Any]) -> str:
    verdict = "record" if d.get("record") else "do not record"
    reason = text(d.get("reason"))
    return f"{verdict} ({text(d.get('action'))})" + (f": {reason}" if reason else "")


def _after(d: Mapping[str, Any]) -> str:
    why = text(d.get("why"))
    return f" after {_WHY.get(why, why)}" if why else ""


Sentence = Callable[[Mapping[str, Any], str, Names], str]


def _dialled(d: Mapping[str, Any], who: str, n: Names) -> str:
    target = who if who and who != n.party(None) else text(d.get("target") or d.get("dialstring"))
    by = n.party(d.get("caller")) if d.get("caller") else ""
    return f"Dialled {target}" + (f" for {by}" if by else "")


def _tagged(d: Mapping[str, Any], who: str, n: Names) -> str:
    by = _by(d, "")
    return f"Tagged {text(d.get('tag'))}" + (f" {by}" if by else "")


def _hung_up(d: Mapping[str, Any], who: str, n: Names) -> str:
    if d.get("unseen"):  # found gone on a reconnection: this row's time is when
        return f"{who or 'A party'} was found gone when the recorder reconnected"
    return f"{who or 'A party'} hung up"


def _transferred(d: Mapping[str, Any], who: str, n: Names) -> str:
    result = text(d.get("result"))
    failed = f" (it failed: {result})" if result and result != "Success" else ""
    to = text(d.get("exten") or d.get("to")) or "another number"
    return f"Transferred by {who or 'a party'} to {to}{failed}"


def _attended(d: Mapping[str, Any], who: str, n: Names) -> str:
    linked = text(d.get("linked_call"))
    return (f"Attended transfer by {who or 'a party'}"
            + (f", joining this call with call {linked}" if linked else ""))  # fmt: skip


def _announced(played: str) -> Sentence:
    def sentence(d: Mapping[str, Any], who: str, n: Names) -> str:
        mode = text(d.get("mode"))
        what = f"the {mode} announcement" if mode else "the announcement"
        key = text(d.get("dtmf"))
        if played == "finished":
            return f"{who or 'A party'} heard {what} to the end"
        return f"{who or 'A party'}: {what} was interrupted" + (
            f" by key {key}" if key else " (hung up, or it was stopped)")

    return sentence


def _paused(verb: str) -> Sentence:
    def sentence(d: Mapping[str, Any], who: str, n: Names) -> str:
        by = _by(d, who)
        return f"Recording {verb}" + (f" {by}" if by else "")

    return sentence


SENTENCES: Final[Mapping[str, Sentence]] = {
    "call.started": lambda d, who, n: (
        f"{text(d.get('direction')).capitalize() or 'The'} call for {text(d.get('target'))}"
        + (" (the dialplan keeps the call: each party is recorded on its own)"
           if d.get("mode") == "hook" else "")),
    "call.answered": lambda d, who, n: f"{who or 'The callee'} answered",
    "call.bridged": lambda d, who, n: f"{who or 'A party'} connected to the conversation",
    "call.department": lambda d, who, n: f"Department: {text(d.get('department'))}",
    "call.tagged": _tagged,
    "call.ended": lambda d, who, n: "The call ended" + (
        f" ({text(d.get('outcome')).replace('_', ' ')})" if d.get("outcome") else ""),
    "leg.found": lambda d, who, n: f"{who or 'A party'} joined on the dialplan's call",
    "leg.hold": lambda d, who, n: f"{who or 'A party'} put the call on hold",
    "leg.unhold": lambda d, who, n: f"{who or 'A party'} took the call off hold",
    "leg.hangup": _hung_up,
    "dial.started": _dialled,
    "dial.failed": lambda d, who, n: f"{who or 'The dialled party'} " + _DIALSTATUS.get(
        text(d.get("dialstatus")), f"was not reached ({text(d.get('dialstatus'))})"),
    "dial.ring_group": lambda d, who, n: (
        f"Ring group {text(d.get('group'))} rang {text(d.get('members'))}"),
    "dial.forwarded": lambda d, who, n: (
        f"{who or 'The dialled party'} forwarded the call to {text(d.get('forward'))}"),
    "transfer.blind": _transferred,
    "transfer.attended": _attended,
    "transfer.dialing": lambda d, who, n: f"The transfer dials {text(d.get('exten'))}",
    "transfer.replaced": lambda d, who, n: (
        f"The transfer's connection took the place of {n.party(d.get('replaces'))}"),
    "transfer.answered": lambda d, who, n: f"{who or 'The transfer target'} answered the transfer",
    "transfer.failed": lambda d, who, n: (
        f"The transfer to {who or 'its target'} failed ({text(d.get('dialstatus'))})"),
    "consent.decision": lambda d, who, n: f"Policy decided{_after(d)}: {_decided(d)}",
    "consent.finished": _announced("finished"),
    "consent.played": _announced("finished"),  # without a policy: the configured prompt
    "consent.interrupted": _announced("interrupted"),
    "consent.failed": lambda d, who, n: (
        f"The announcement to {who or 'a party'} could not be played"
        + (f" ({text(d.get('error'))})" if d.get("error") else "")),
    "consent.opted_out": lambda d, who, n: f"{who or 'A party'} declined to be recorded",
    "consent.not_announced": lambda d, who, n: (
        f"{who or 'A party'} joined without hearing the announcement due"
        + (f" ({text(d.get('prompts'))})" if d.get("prompts") else "")),
    "consent.recording_not_started": lambda d, who, n: (
        f"Recording of {who or 'a party'} not started"
        + (f": {text(d.get('reason'))}" if d.get("reason") else "")),
    "consent.recording_stopped": lambda d, who, n: (
        f"Recording stopped by policy{_after(d)}"
        + (f": {text(d.get('reason'))}" if d.get("reason") else "")),
    "consent.recording_due": lambda d, who, n: (
        f"Policy records the call from now on{_after(d)}: recording starts once the "
        "announcements due have played"),
    "recording.started": lambda d, who, n: (
        f"Recording segment {text(d.get('segment'))} started" + (f" ({who})" if who else "")),
    "recording.finished": lambda d, who, n: f"{n.segment(d.get('recording')).capitalize()} ended",
    "recording.filed": lambda d, who, n: (
        f"{n.segment(d.get('recording')).capitalize()} stored in the archive"
        + (f" ({seconds(d.get('duration_ms'))})" if d.get("duration_ms") is not None else "")),
    "recording.failed": lambda d, who, n: (
        f"{n.segment(d.get('recording')).capitalize()} failed"
        + (f": {text(d.get('error'))}" if d.get("error") else "")),
    "recording.gap": lambda d, who, n: (
        f"{n.segment(d.get('recording')).capitalize()} ended mid-call"
        + (f" ({text(d.get('reason'))})" if d.get("reason") else "")
        + "; a new segment was started at once"),
    "recording.unavailable": lambda d, who, n: (
        f"No recording could be started ({text(d.get('attempts'))} attempts)"),
    "recording.missing": lambda d, who, n: (
        f"{n.segment(d.get('recording')).capitalize()} is missing"
        + (f": {text(d.get('error'))}" if d.get("error") else "")),
    "recording.waiting": lambda d, who, n: (
        f"{n.segment(d.get('recording')).capitalize()} kept safe in Asterisk's spool until the "
        "archive has room again" + (f" ({seconds(d.get('duration_ms'))})"
                                    if d.get("duration_ms") is not None else "")),
    "recording.recovered": lambda d, who, n: (
        f"{n.segment(d.get('recording')).capitalize()} recovered after a restart"),
    "recording.paused": _paused("paused"),
    "recording.resumed": _paused("resumed"),
    "recording.stopped": _paused("stopped"),
    "recording.on_demand": _paused("started on demand"),
    "recording.pause_failed": lambda d, who, n: (
        f"Asterisk refused to pause {n.segment(d.get('recording'))}"),
    "recording.resume_failed": lambda d, who, n: (
        f"Asterisk refused to resume {n.segment(d.get('recording'))}"),
    "ari.request_failed": lambda d, who, n: (
        f"Asterisk refused a request ({text(d.get('command'))}: {text(d.get('status'))} "
        f"{text(d.get('message'))})".replace(" )", ")")),
}


def sentence(event: Mapping[str, Any], names: Names) -> str:
    """One event (a call_events row) as a sentence."""
    kind = str(event["kind"])
    detail = dict(event.get("detail") or {})
    if event.get("recording_name") and "recording" not in detail:
        detail["recording"] = event["recording_name"]
    who = names.party(event.get("channel_id"))
    found = SENTENCES.get(kind)
    if found is None:  # a kind newer than this page: still words, never a repr
        return f"{kind.replace('.', ': ', 1).replace('_', ' ').capitalize()}"
    words = re.sub(r"\s+", " ", found(detail, who, names)).strip()
    return words[:1].upper() + words[1:]


# -- consent ----------------------------------------------------------------------------------

_SOURCES: Final = {
    "override": "the policy names this number or extension's state",
    "extension": "an extension of the office",
    "geocoder": "where the number was issued (area code)",
    "region": "the number's country",
    "default": "the number could not be placed, so the policy's default applies",
}
_WHEN: Final = {
    "before-bridge": "before being connected",
    "on-answer": "on answering, before being connected",
    "on-join": "on joining the call",
}


@functools.cache
def prompt_words() -> Mapping[str, tuple[str, str]]:
    """prompt id -> (its words, its file's SHA-256), from the shipped prompts manifest."""
    try:
        manifest = read_manifest(DEFAULT_DIRECTORY)
    except PromptsError:
        return {}
    return {str(p["id"]): (str(p.get("text", "")), str(p.get("sha256", "")))
            for p in manifest["prompts"]}  # fmt: skip


def _clock(value: Any) -> str:
    return value.strftime("%H:%M:%S") if isinstance(value, datetime) else ""


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class PartyConsent:
    party: str  # the page's name for the party
    law: str  # "California law: all-party consent"
    why: str  # how the jurisdiction was found
    heard: str  # what was played, when, how it ended, the key pressed
    words: str  # the announcement's words ("" when none)
    outcome: str  # recorded or not, and the rule


def law(row: Mapping[str, Any]) -> str:
    state, region = row.get("state"), row.get("region")
    place = STATES.get(str(state), str(state)) if state else (
        f"region {region}" if region else "an unknown place")
    return f"{place} law: {row.get('mode')} consent"


def party_consent(row: Mapping[str, Any], name: str) -> PartyConsent:
    """One consent_audit row in words."""
    detail = text(row.get("jurisdiction_detail")).strip("'\"")
    source = str(row.get("jurisdiction_source"))
    why = _SOURCES.get(source, source) + (f" ({detail})" if detail else "")
    start, end = _stamp(row.get("started_at")), _stamp(row.get("ended_at"))
    if row.get("played") == "none" or not row.get("prompt"):
        heard, words = "No announcement was due.", ""
    else:
        when = _WHEN.get(str(row.get("announcement")), "")
        span = f"{_clock(start)}–{_clock(end)} UTC" if start and end else _clock(start)
        length = f", {seconds((end - start).total_seconds() * 1000)}" if start and end else ""
        how = ("heard to the end" if row.get("played") == "finished"
               else "interrupted before the end")  # fmt: skip
        key = text(row.get("dtmf"))
        pressed = f"; key {key} pressed" + (" (opt-out)" if row.get("opted_out") else "") \
            if key else ""  # fmt: skip
        heard = (f"Heard the {row.get('prompt')} announcement {when} ({span}{length}), "
                 f"{how}{pressed}.").replace(" ,", ",")  # fmt: skip
        found = prompt_words().get(str(row.get("prompt")))
        words = ""
        if found:
            words = found[0]
            if row.get("prompt_sha256") and found[1] and row["prompt_sha256"] != found[1]:
                words += " (the words of the shipped prompt; the file played differs)"
    recorded = "Recorded" if row.get("recorded") else "Not recorded"
    refused = " (declined)" if row.get("opted_out") else ""
    outcome = (f"{recorded}{refused}: decided by {text(row.get('rule'))} "
               f"({text(row.get('action'))}); the strictest law among the parties present: "
               f"{text(row.get('governing_mode'))}.")  # fmt: skip
    return PartyConsent(name, law(row), why, heard, words, outcome)


def decision_words(decision: Mapping[str, Any] | None) -> list[str]:
    """The call's stored decision as `verbatim explain` prints it."""
    if not decision or "action" not in decision:
        return []
    d = Decision(
        action=decision["action"], record=bool(decision.get("record")),
        retention=text(decision.get("retention")),
        decided_by=tuple(str(x) for x in decision.get("decided_by") or ()),
        reason=text(decision.get("reason")), route_to=decision.get("route_to") or None,
    )  # fmt: skip
    return decision_lines(d)


def consent_story(rows: Sequence[Mapping[str, Any]], names: Names) -> list[PartyConsent]:
    return [party_consent(r, names.party(r.get("channel_id")) or text(r.get("party")))
            for r in rows]  # fmt: skip
