"""The policy file's `retention:` section: how long each retention class keeps a call.

    retention:
      release_needs_two: true         # releasing a legal hold takes a second admin
      classes:
        standard: 2y                  # the audio; the call's metadata is kept
        training: 90d
        privileged-metadata: {audio: 0d, metadata: 7y}

A length is days, weeks or years (`90d`, `12w`, `7y`) or `forever`. A plain length is the
audio's; the metadata (the call's rows: legs, timeline, consent, tags) goes only where the class
gives `metadata:`, and never before the audio. Once classes are listed, every class a rule,
do-not-record entry or `defaults.retention` names must be one of them.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

import yaml

from recorder.config._reader import Invalid, Section, kind
from recorder.config.model import ConfigError
from recorder.policy import _fields as f
from recorder.policy.model import Length, Policy, RetentionClass, RetentionPolicy

KEYS: Final = ("classes", "release_needs_two")
CLASS_KEYS: Final = ("audio", "metadata")
CLASS_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LENGTH = re.compile(r"^([0-9]{1,4}) ?([dwy])$")


def length(value: str) -> Length | None:
    """`90d`, `12w`, `7y` or `forever` (None)."""
    text = value.strip().lower()
    if text == "forever":
        return None
    m = _LENGTH.fullmatch(text)
    if not m:
        raise Invalid(f"expected a length such as 90d, 12w, 7y or forever, got '{value}'")
    n, unit = int(m.group(1)), m.group(2)
    return Length(years=n) if unit == "y" else Length(days=n * (7 if unit == "w" else 1))


def _length(s: Section, key: str) -> Length | None:
    text, _ = f.raw_text(s, key, "a length such as 90d, 12w, 7y or forever")
    try:
        return length(text)
    except Invalid as exc:
        raise s.error(key, str(exc)) from None


def read_retention(s: Section) -> RetentionPolicy:
    classes: dict[str, RetentionClass] = {}
    sub = s.section("classes", None)
    for name, (line, node) in sub.entries.items():
        if not CLASS_NAME.fullmatch(name):
            raise sub.error(name, "a class name is letters, digits, - _ . (at most 64)", line)
        if isinstance(node, yaml.MappingNode):
            c = Section(s.file, s.env, sub.key_path(name), line, node, CLASS_KEYS)
            if "audio" not in c.entries:
                raise c.error("audio", "required key is missing (e.g. audio: 0d)")
            audio = _length(c, "audio")
            metadata = _length(c, "metadata") if "metadata" in c.entries else None
            if "metadata" in c.entries and _shorter(metadata, audio):
                raise c.error("metadata", "must be at least as long as audio (a call's audio "
                              "cannot outlive its rows)")  # fmt: skip
        elif isinstance(node, yaml.ScalarNode) and kind(node) != "null":
            audio, metadata = _length(sub, name), None
        else:
            raise sub.error(name, "expected a length (7y) or {audio: ..., metadata: ...}", line)
        classes[name] = RetentionClass(name, audio, metadata, line)
    return RetentionPolicy(
        classes=MappingProxyType(classes),
        release_needs_two=f.boolean(s, "release_needs_two", RetentionPolicy.release_needs_two),
    )


def _shorter(a: Length | None, b: Length | None) -> bool:
    """Whether keeping for `a` ends before keeping for `b` (None: forever)."""
    if a is None:
        return False
    return b is None or a.approx_days < b.approx_days


def check_classes(policy: Policy, defaults: Section) -> None:
    """Every class the policy assigns is one the retention section defines (when it lists any):
    a call under an unknown class would never expire, silently."""
    known = policy.retention_policy.classes
    if not known:
        return
    defaults_line = defaults.entries.get("retention", (defaults.line, None))[0]
    named: list[tuple[int, str, str | None]] = [
        (defaults_line, "defaults.retention", policy.retention)
    ]
    named += [(r.line, f"rule '{r.name}'.retention", r.retention) for r in policy.rules]
    named += [(d.line, f"do_not_record '{d.name}'.retention", d.retention)
              for d in policy.do_not_record]  # fmt: skip
    for line, key, name in named:
        if name is not None and name not in known:
            message = f"retention class '{name}' is not in retention.classes ({', '.join(known)})"
            raise ConfigError(defaults.file, line, key, message)
