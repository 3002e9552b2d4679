"""The recording policy as validated data: frozen dataclasses, the loader fills them.

Defaults live here, on the dataclasses, so `Policy()` is the built-in policy used when no
policy file is configured, and a test building a Policy cannot disagree with the loader about
them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from recorder.config.model import ConfigError
from recorder.policy.states import DEFAULT_ALL_PARTY_STATES

Action = Literal["force", "yes", "dontcare", "no", "never"]
RULE_ACTIONS: Final[tuple[Action, ...]] = ("force", "yes", "dontcare", "no", "never")
Mode = Literal["all-party", "one-party"]
MODES: Final[tuple[Mode, ...]] = ("all-party", "one-party")
# The points of a call's path, in the order they are evaluated.
Point = Literal["route", "department", "extension", "transfer"]
POINTS: Final[tuple[Point, ...]] = ("route", "department", "extension", "transfer")
Via = Literal["transfer", "forward"]
VIAS: Final[tuple[Via, ...]] = ("transfer", "forward")
# What happens to a call after a party opted out: it goes on unrecorded, is sent to a
# dialplan location, or is hung up (only sensible when policy forces recording).
AfterOptOut = Literal["continue", "route", "end"]
AFTER_OPT_OUT: Final[tuple[AfterOptOut, ...]] = ("continue", "route", "end")
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
WITHHELD: Final = "withheld"  # the number pattern that matches a withheld caller id


class PolicyError(ConfigError):
    """A policy file problem: "<file>:<line>: <rule name or key path>: <problem>"."""


@dataclass(frozen=True)
class NumberPattern:
    """An E.164 prefix ("+1212"), a regular expression, or the word `withheld`.

    Prefixes and regexes are tried against the number's E.164 form, or the raw text (digits of
    an extension, say) when it has none.
    """

    prefix: str | None = None
    regex: re.Pattern[str] | None = None
    withheld: bool = False

    def matches(self, e164: str | None, raw: str | None) -> bool:
        if self.withheld:  # "", "anonymous", "Restricted": no digits at all
            return e164 is None and not any(c.isdigit() for c in raw or "")
        text = e164 or (raw or "").strip()
        if not text:
            return False
        if self.prefix is not None:
            return text.startswith(self.prefix)
        return self.regex is not None and self.regex.search(text) is not None


@dataclass(frozen=True)
class TimeWindow:
    """Days plus HH:MM-HH:MM in a time zone. A window whose end is not after its start crosses
    midnight and belongs to the day it starts on: fri 22:00-06:00 covers Saturday 03:00."""

    days: frozenset[int]  # date.weekday() numbers
    start: time
    end: time | None  # None: 24:00, the end of the day
    zone: str  # IANA name, e.g. America/Los_Angeles

    @property
    def crosses_midnight(self) -> bool:
        return self.end is not None and self.end <= self.start

    def __str__(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{days} {self.start.strftime('%H:%M')}-{end} {self.zone}"


@dataclass(frozen=True)
class Match:
    """What a rule matches; an empty field matches anything. All given fields must hold."""

    directions: frozenset[str] = frozenset()
    trunks: frozenset[str] = frozenset()
    dids: tuple[NumberPattern, ...] = ()
    callers: tuple[NumberPattern, ...] = ()
    callees: tuple[NumberPattern, ...] = ()
    # At `transfer` these are the transfer/forward target's; elsewhere the call's own.
    extensions: tuple[NumberPattern, ...] = ()
    departments: frozenset[str] = frozenset()
    targets: tuple[NumberPattern, ...] = ()  # transfer/forward target number (`transfer` only)
    vias: frozenset[str] = frozenset()  # transfer and/or forward (`transfer` only)
    times: tuple[TimeWindow, ...] = ()  # any one window


@dataclass(frozen=True)
class Rule:
    name: str
    at: Point
    action: Action
    match: Match = field(default_factory=Match)
    retention: str | None = None  # None: the policy's default retention class
    line: int = 0  # where it is written, for explain and errors


@dataclass(frozen=True)
class DoNotRecord:
    """Numbers never recorded, whatever the rules say: the call's metadata is kept."""

    name: str
    numbers: tuple[NumberPattern, ...]
    retention: str | None = None
    line: int = 0


@dataclass(frozen=True)
class OptOut:
    dtmf: str | None = "9"  # None: no opt-out offered (and the prompts do not mention one)
    then: AfterOptOut = "continue"  # after an opt-out when the decision was yes
    when_forced: AfterOptOut = "end"  # after an opt-out when the policy forces recording
    route_to: str | None = None  # "context,extension,priority" for `route`


@dataclass(frozen=True)
class Announcements:
    language: str = "en"
    # E.164 prefix -> language of the prompts that party hears; the longest prefix wins.
    languages: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    media_prefix: str = "sound:verbatim/"  # + prompt id = the ARI media URI
    # Whether the firm's own extensions hear prompts. Off by default: staff consent through
    # their employment, and each prompt spared is seconds before anyone can talk.
    to_extensions: bool = False


@dataclass(frozen=True)
class Office:
    name: str
    state: str
    extensions: tuple[NumberPattern, ...]


@dataclass(frozen=True)
class JurisdictionConfig:
    all_party_states: frozenset[str] = DEFAULT_ALL_PARTY_STATES
    # Withheld, foreign, toll-free and unresolvable numbers, and extensions of no office.
    default_mode: Mode = "all-party"
    regions: Mapping[str, Mode] = field(default_factory=lambda: MappingProxyType({}))
    offices: tuple[Office, ...] = ()
    # The office whose state an extension of no office takes; None: the default mode.
    default_office: str | None = None
    extensions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    numbers: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )  # prefix->state


@dataclass(frozen=True)
class Numbering:
    """How the PBX writes numbers: from verbatim.yaml's `calls` section (see numbering_from)."""

    default_region: str = "US"
    outside_line_prefix: str = "9"
    extension_pattern: str = r"^[0-9]{2,6}$"
    departments: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )  # extension -> department


@dataclass(frozen=True)
class Length:
    """How long something is kept after its call ended: calendar years plus days (weeks are
    written as days). `forever` is None where a Length is expected."""

    years: int = 0
    days: int = 0

    @property
    def sql(self) -> str:
        """A PostgreSQL interval literal: calendar arithmetic (2 years after Feb 29 is Feb 28)."""
        return f"{self.years} years {self.days} days"

    @property
    def approx_days(self) -> float:
        return self.years * 365.25 + self.days

    def __str__(self) -> str:
        parts = [f"{self.years}y"] if self.years else []
        if self.days or not parts:
            parts.append(f"{self.days}d")
        return " ".join(parts)


@dataclass(frozen=True)
class RetentionClass:
    """How long a class's audio and metadata (the call's rows) are kept; None: forever."""

    name: str
    audio: Length | None
    metadata: Length | None = None  # metadata is kept unless the class says otherwise
    line: int = 0


@dataclass(frozen=True)
class RetentionPolicy:
    """The policy file's `retention:` section. No classes: nothing ever expires."""

    classes: Mapping[str, RetentionClass] = field(default_factory=lambda: MappingProxyType({}))
    release_needs_two: bool = False  # releasing a legal hold takes a second admin


@dataclass(frozen=True)
class Policy:
    default_action: Action = "yes"  # when no point of the call path decided
    retention: str = "standard"  # retention class when the deciding rule names none
    time_zone: str = "UTC"  # for time windows that name no zone
    rules: tuple[Rule, ...] = ()
    do_not_record: tuple[DoNotRecord, ...] = ()
    opt_out: OptOut = field(default_factory=OptOut)
    announcements: Announcements = field(default_factory=Announcements)
    jurisdiction: JurisdictionConfig = field(default_factory=JurisdictionConfig)
    numbering: Numbering = field(default_factory=Numbering)
    retention_policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    path: Path | None = None  # the file it was loaded from; None: built-in defaults
