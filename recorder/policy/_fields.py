"""Field readers for the policy file, on top of recorder.config._reader's line-keeping Section.

Each reader raises a located ConfigError (the loader turns it into a PolicyError). Values YAML
would read as something else are taken from the text as written where that is unambiguous:
`action: yes` is the action "yes", not the boolean true, and `08:00` is a time, not the
sexagesimal integer 480, because counsel should not need to know YAML 1.1's quirks.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import time
from typing import TypeVar

import yaml

from recorder.config._checks import name, non_empty, one_of
from recorder.config._reader import Check, Invalid, Section, kind, line_of, suggest
from recorder.config.model import ConfigError
from recorder.policy.model import DAYS, WITHHELD, NumberPattern, TimeWindow
from recorder.policy.states import STATES

__all__ = ["Check", "name", "non_empty", "one_of"]  # re-exported for the loader

T = TypeVar("T")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_E164_PREFIX = re.compile(r"^\+[0-9]{1,15}$")


def located(s: Section, path: str, node: yaml.Node, message: str) -> ConfigError:
    return ConfigError(s.file, line_of(node), path, message)


def raw_text(s: Section, key: str, expected: str) -> tuple[str, yaml.ScalarNode]:
    """The scalar as written (booleans and numbers included), or an error for lists/mappings."""
    node = s.entries[key][1]
    if not isinstance(node, yaml.ScalarNode) or kind(node) == "null":
        got = "nothing (null)" if isinstance(node, yaml.ScalarNode) else f"a {kind(node)}"
        raise s.error(key, f"expected {expected}, got {got}")
    return str(node.value), node


def choice(s: Section, key: str, choices: Sequence[T], default: T) -> T:
    """One of `choices`, read from the text as written (so unquoted yes/no are words)."""
    if key not in s.entries:
        return default
    text, _ = raw_text(s, key, "one of " + ", ".join(map(str, choices)))
    for c in choices:
        if text.lower() == str(c):
            return c
    hint = suggest(text, [str(c) for c in choices])
    raise s.error(key, f"must be one of {', '.join(map(str, choices))}, got '{text}'{hint}")


def boolean(s: Section, key: str, default: bool) -> bool:
    if key not in s.entries:
        return default
    node = s.entries[key][1]
    if isinstance(node, yaml.ScalarNode) and kind(node) == "boolean":
        return str(node.value).lower() in ("true", "yes", "on")
    raise s.error(key, "expected true or false")


def items(s: Section, key: str) -> list[tuple[str, yaml.Node]]:
    """The entries of a list (a single scalar counts as a list of one), with their key paths."""
    if key not in s.entries:
        return []
    node = s.entries[key][1]
    path = s.key_path(key)
    if isinstance(node, yaml.ScalarNode) and kind(node) != "null":
        return [(path, node)]
    if not isinstance(node, yaml.SequenceNode):
        raise s.error(key, f"expected a list, got a {kind(node)}")
    return [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]


def scalar_item(s: Section, path: str, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or kind(node) in ("null", "boolean"):
        got = f"{kind(node)} '{node.value}'" if isinstance(node, yaml.ScalarNode) else kind(node)
        raise located(s, path, node, f"expected {what}, got {got}")
    return str(node.value)


def words(s: Section, key: str, what: str, check: Callable[[str], str] | None = None) -> list[str]:
    out = []
    for path, node in items(s, key):
        value = scalar_item(s, path, node, what)
        if kind(node) != "string" and check is None:
            raise located(s, path, node, f"expected {what} (a string), got {value}; quote it")
        if check is not None:
            try:
                value = check(value)
            except Invalid as exc:
                raise located(s, path, node, str(exc)) from None
        out.append(value)
    return out


def e164_prefix(value: str) -> str:
    compact = re.sub(r"[\s().-]", "", value)
    if not _E164_PREFIX.fullmatch(compact):
        raise Invalid(f"expected an E.164 number or prefix such as +1212, got '{value}'")
    return compact


def matches(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise Invalid(f"expected {what}, got '{value}'")
        return value

    return check


def media_prefix(value: str) -> str:
    if not value.startswith(("sound:", "recording:")) or value.endswith(":"):
        raise Invalid(
            f"expected the start of an ARI media URI such as sound:verbatim/, got '{value}'"
        )
    return value


def state_code(value: str) -> str:
    code = value.strip()
    if code not in STATES:
        hint = f"; did you mean '{code.upper()}'?" if code.upper() in STATES else ""
        by_name = {name.lower(): c for c, name in STATES.items()}
        if not hint and code.lower() in by_name:
            hint = f"; write '{by_name[code.lower()]}'"
        raise Invalid(f"unknown state code '{value}' (a US state or DC, e.g. CA){hint}")
    return code


def time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"unknown time zone '{value}' (an IANA name, e.g. America/New_York)"
        ) from None
    return value


def language(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", value):
        raise Invalid(f"expected a language code such as en or es, got '{value}'")
    return value


def patterns(s: Section, key: str, *, numbers: bool) -> tuple[NumberPattern, ...]:
    """A list of "+1212" prefixes (`numbers`) or exact strings, `{regex: ...}`, or `withheld`."""
    out: list[NumberPattern] = []
    for path, node in items(s, key):
        if isinstance(node, yaml.MappingNode):
            sub = Section(s.file, s.env, path, line_of(node), node, ("regex",))
            if "regex" not in sub.entries:
                raise sub.error(None, "expected {regex: '...'}")
            text, _ = raw_text(sub, "regex", "a regular expression")
            try:
                out.append(NumberPattern(regex=re.compile(text)))
            except re.error as exc:
                raise sub.error("regex", f"is not a valid regular expression: {exc}") from None
            continue
        value = scalar_item(s, path, node, "a number, {regex: ...} or withheld")
        if value == WITHHELD:
            out.append(NumberPattern(withheld=True))
        elif numbers:
            try:
                out.append(NumberPattern(prefix=e164_prefix(value)))
            except Invalid as exc:
                raise located(s, path, node, str(exc)) from None
        else:  # extensions: exact, so "20" does not match 201
            out.append(NumberPattern(regex=re.compile(re.escape(value) + r"\Z")))
    return tuple(out)


def _hhmm(text: str, *, end: bool) -> time | None:
    if end and text == "24:00":
        return None
    m = _HHMM.fullmatch(text)
    if not m:
        raise Invalid(f"'{text}' is not a time HH:MM (00:00 to 23:59, or 24:00 as an end)")
    return time(int(m.group(1)), int(m.group(2)))


def days(value: str) -> frozenset[int]:
    """ "mon-fri", "sat,sun", "daily" or one day; a range may wrap (fri-mon)."""
    found: set[int] = set()
    for part in (p.strip().lower() for p in value.split(",")):
        if part in ("daily", "all", "every day"):
            return frozenset(range(7))
        ends = [e.strip()[:3] for e in part.split("-")]
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise Invalid(f"'{value}' is not a day list such as mon-fri or sat,sun")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        found.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(found)


def window(s: Section, default_zone: str) -> TimeWindow:
    """{days: mon-fri, hours: "08:00-18:00", zone: America/New_York (optional)}."""
    if "hours" not in s.entries:
        raise s.error("hours", 'required key is missing (e.g. hours: "08:00-18:00")')
    if "days" not in s.entries:
        raise s.error("days", "required key is missing (e.g. days: mon-fri)")
    text, _ = raw_text(s, "hours", 'hours such as "08:00-18:00"')
    day_set: set[int] = set()
    for path, node in items(s, "days"):
        try:
            day_set |= days(scalar_item(s, path, node, "days such as mon-fri"))
        except Invalid as exc:
            raise located(s, path, node, str(exc)) from None
    # YAML reads an unquoted 08:00-18:00 as a string but 08:00 alone as an integer: use the text.
    parts = text.split("-")
    if len(parts) != 2:
        raise s.error("hours", f"expected \"HH:MM-HH:MM\", got '{text}'")
    try:
        start = _hhmm(parts[0].strip(), end=False)
        end = _hhmm(parts[1].strip(), end=True)
    except Invalid as exc:
        raise s.error("hours", str(exc)) from None
    assert start is not None
    if end == start:
        raise s.error("hours", f"'{text}' is empty; write 00:00-24:00 for a whole day")
    zone = s.text("zone", default_zone, time_zone)
    if not day_set:
        raise s.error("days", "must name at least one day")
    return TimeWindow(frozenset(day_set), start, end, zone)
