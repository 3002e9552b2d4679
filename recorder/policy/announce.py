"""Who hears which consent announcement, and when. Pure: returns data, plays nothing.

- Before the bridge, the caller hears the prompt of the call's governing rule (the strictest
  of caller and intended callee): all-party or one-party wording.
- When the callee answers, it hears the all-party prompt where all-party applies.
- When a party joins by transfer or forward: if the governing rule (now including the new
  party) is all-party, every party present that has not yet heard the all-party prompt hears
  it, the new party included. So a one-party call into which an all-party party is transferred
  is announced to everyone; an all-party call announces only to the newcomer.
- When recording starts on a call already under way (a party joined and policy now records
  what it did not), every party present that has not heard the governing prompt hears it first,
  one-party wording included: nobody is recorded before an announcement.
- Nothing is announced on a call that is not recorded.
- The firm's own extensions are spared every prompt (staff consent through their employment;
  an outbound caller then hears nothing before the bridge, an extension answering hears
  nothing before it joins), never an outside party. `announcements.to_extensions: true`
  announces to them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from recorder.policy.jurisdiction import jurisdiction_of, strictest
from recorder.policy.model import Mode, Policy
from recorder.policy.rules import e164_of

When = Literal["before-bridge", "on-answer", "on-join"]
WHENS: Final[tuple[When, ...]] = ("before-bridge", "on-answer", "on-join")


@dataclass(frozen=True)
class Party:
    label: str  # "caller", "callee", "target1", or whatever id the caller of these functions uses
    number: str | None  # number or extension as presented/dialled; None when withheld
    heard: Mode | None = None  # the strictest prompt this party has heard on this call


@dataclass(frozen=True)
class Announcement:
    to: str  # the party's label
    when: When
    mode: Mode
    language: str
    prompt: str  # prompt id, the file name without .wav: "consent-all-party-en"
    media: str  # ARI media URI: "sound:verbatim/consent-all-party-en"
    opt_out_dtmf: str | None  # the key that means "do not record" during it, if any

    def __str__(self) -> str:
        return f"{self.to}: {self.mode} {self.language} ({self.when})"


def prompt_id(mode: Mode, language: str) -> str:
    return f"consent-{mode}-{language}"


def language_for(number: str | None, policy: Policy) -> str:
    """The prompt language for a party: the longest matching prefix in announcements.languages."""
    a = policy.announcements
    e164 = e164_of(number, policy)
    if e164 is None:
        return a.language
    best = max((p for p in a.languages if e164.startswith(p)), key=len, default=None)
    return a.languages[best] if best is not None else a.language


def mode_of(parties: Sequence[Party], policy: Policy) -> Mode:
    """The governing rule among `parties`: the strictest of their jurisdictions."""
    return strictest(jurisdiction_of(p.number, policy).mode for p in parties)


def _announce(party: Party, when: When, mode: Mode, policy: Policy) -> Announcement:
    language = language_for(party.number, policy)
    pid = prompt_id(mode, language)
    media = policy.announcements.media_prefix + pid
    return Announcement(party.label, when, mode, language, pid, media, policy.opt_out.dtmf)


def _spared(party: Party, policy: Policy) -> bool:
    if policy.announcements.to_extensions:
        return False
    return jurisdiction_of(party.number, policy).internal


def announcements_at_start(
    caller: Party, callee: Party, policy: Policy, *, recording: bool = True
) -> list[Announcement]:
    """The caller's prompt before the bridge and, where all-party applies, the callee's on
    answer. `callee` is the party being dialled (its number is known before it answers)."""
    if not recording:
        return []
    mode = mode_of([caller, callee], policy)
    out = []
    if not _spared(caller, policy):
        out.append(_announce(caller, "before-bridge", mode, policy))
    if mode == "all-party" and not _spared(callee, policy):
        out.append(_announce(callee, "on-answer", mode, policy))
    return out


def announcements_on_join(
    parties_before: Sequence[Party], new_party: Party, policy: Policy, *, recording: bool = True
) -> list[Announcement]:
    """Prompts due when `new_party` joins `parties_before` (the parties still present; each
    with `heard` set to the strictest prompt it has heard), the newcomer's last."""
    if not recording:
        return []
    mode = mode_of([*parties_before, new_party], policy)
    if mode != "all-party":
        return []
    return [
        _announce(p, "on-join", mode, policy)
        for p in (*parties_before, new_party)
        if p.heard != "all-party" and not _spared(p, policy)
    ]


def announcements_on_start(parties: Sequence[Party], policy: Policy) -> list[Announcement]:
    """Prompts due before recording starts on a call already under way (policy now records it
    after a party joined): each party present that has not heard the governing prompt, in the
    order given (the newcomer last)."""
    mode = mode_of(parties, policy)
    return [
        _announce(p, "on-join", mode, policy)
        for p in parties
        if (p.heard is None or (mode == "all-party" and p.heard != "all-party"))
        and not _spared(p, policy)
    ]


def announcements_on_answer(
    before: Sequence[Party], newcomer: Party, policy: Policy, *, recorded_before: bool
) -> list[Announcement]:
    """What plays when `newcomer` answers on a recorded call (a transfer's or forward's target,
    a ring group's member): the join prompts while the call was being recorded; every party's,
    one-party wording included, when policy records it only from now (`recorded_before`
    False). The call model and `explain` both ask this."""
    if recorded_before:
        return announcements_on_join(before, newcomer, policy)
    return announcements_on_start([*before, newcomer], policy)
