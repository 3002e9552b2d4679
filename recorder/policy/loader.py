"""load_policy: the policy file, validated into a frozen Policy; the first problem raises.

Every error reads "<file>:<line>: <rule name or key path>: <problem>", e.g.
  policy.yaml:31: rule 'After hours'.match.time[0].hours: '25:00' is not a time HH:MM ...
Unknown keys are errors, as in verbatim.yaml: a misspelt `acton:` must not leave a rule
without its action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

import phonenumbers
import yaml

from recorder.common.direction import DIRECTIONS
from recorder.config._reader import Invalid, Section, kind, line_of, parse_yaml, suggest
from recorder.config.model import CallsConfig, ConfigError
from recorder.policy import _fields as f
from recorder.policy.model import (
    AFTER_OPT_OUT,
    MODES,
    POINTS,
    RULE_ACTIONS,
    VIAS,
    Action,
    Announcements,
    DoNotRecord,
    JurisdictionConfig,
    Match,
    Mode,
    Numbering,
    Office,
    OptOut,
    Point,
    Policy,
    PolicyError,
    Rule,
)
from recorder.policy.retention import KEYS as RETENTION_KEYS
from recorder.policy.retention import check_classes, read_retention

KEYS: Final[dict[str, tuple[str, ...]]] = {
    "": (
        "defaults", "opt_out", "announcements", "do_not_record", "rules", "jurisdiction",
        "retention",
    ),
    "defaults": ("action", "retention", "time_zone"),
    "opt_out": ("dtmf", "then", "when_forced", "route_to"),
    "announcements": ("language", "languages", "media_prefix", "to_extensions"),
    "jurisdiction": (
        "all_party_states",
        "default_mode",
        "regions",
        "offices",
        "default_office",
        "extensions",
        "numbers",
    ),
    "rule": ("name", "at", "action", "retention", "match", "note"),
    "match": (
        "direction",
        "trunk",
        "did",
        "caller",
        "callee",
        "extension",
        "department",
        "target",
        "via",
        "time",
    ),
    "window": ("days", "hours", "zone"),
    "do_not_record": ("name", "numbers", "retention", "note"),
    "office": ("name", "state", "extensions"),
}
_ROUTE = re.compile(r"^[A-Za-z0-9_.-]+,[A-Za-z0-9_+*#.-]+,[A-Za-z0-9_-]+$")
_DTMF = re.compile(r"^[0-9*#]$")


def numbering_from(calls: CallsConfig) -> Numbering:
    """The numbering facts of verbatim.yaml's `calls` section, as the policy needs them."""
    return Numbering(
        default_region=calls.default_region,
        outside_line_prefix=calls.outside_line_prefix,
        extension_pattern=calls.extensions.pattern,
        departments=MappingProxyType(dict(calls.department_by_extension)),
    )


def _retention(s: Section) -> str | None:
    def check(value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise Invalid(
                f"expected a retention class name (letters, digits, - _ .), got '{value}'"
            )
        return value

    return s.optional_text("retention", None, check)


def _match(s: Section, zone: str) -> Match:
    windows = []
    for path, node in f.items(s, "time"):
        windows.append(
            f.window(Section(s.file, s.env, path, line_of(node), node, KEYS["window"]), zone)
        )
    return Match(
        directions=frozenset(f.words(s, "direction", "a direction", f.one_of(DIRECTIONS))),
        trunks=frozenset(f.words(s, "trunk", "a trunk name")),
        dids=f.patterns(s, "did", numbers=True),
        callers=f.patterns(s, "caller", numbers=True),
        callees=f.patterns(s, "callee", numbers=True),
        extensions=f.patterns(s, "extension", numbers=False),
        departments=frozenset(f.words(s, "department", "a department name")),
        targets=f.patterns(s, "target", numbers=True),
        vias=frozenset(f.words(s, "via", "transfer or forward", f.one_of(VIAS))),
        times=tuple(windows),
    )


def _point(s: Section, match: Match) -> Point:
    # Where a rule applies follows from what it matches, unless `at` says so explicitly.
    if match.targets or match.vias:
        inferred: Point = "transfer"
    elif match.extensions:
        inferred = "extension"
    elif match.departments:
        inferred = "department"
    else:
        inferred = "route"
    at = f.choice(s, "at", POINTS, inferred)
    if at != "transfer" and (match.targets or match.vias):
        raise s.error("at", f"match.target and match.via apply only at transfer, not at {at}")
    return at


def _rules(root: Section, zone: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    first_line: dict[str, int] = {}
    for path, node in f.items(root, "rules"):
        line = line_of(node)
        if not isinstance(node, yaml.MappingNode):
            raise f.located(root, path, node, f"expected a rule (a mapping), got a {kind(node)}")
        probe = Section(root.file, root.env, path, line, node, None)
        name = probe.text("name", "", f.name) if "name" in probe.entries else ""
        if not name:
            raise probe.error(None, "every rule needs a name (decisions cite it)")
        if name in first_line:
            raise probe.error(
                "name", f"rule name '{name}' is used twice (first on line {first_line[name]})"
            )
        first_line[name] = line
        s = Section(root.file, root.env, f"rule '{name}'", line, node, KEYS["rule"])
        if "action" not in s.entries:
            raise s.error(
                None, "required key 'action' is missing (force, yes, dontcare, no, never)"
            )
        action: Action = f.choice(s, "action", RULE_ACTIONS, "dontcare")
        match = _match(s.section("match", KEYS["match"]), zone)
        rules.append(Rule(name, _point(s, match), action, match, _retention(s), line))
    return tuple(rules)


def _do_not_record(root: Section) -> tuple[DoNotRecord, ...]:
    entries = []
    for path, node in f.items(root, "do_not_record"):
        s = Section(root.file, root.env, path, line_of(node), node, KEYS["do_not_record"])
        name = s.text("name", "", f.name) if "name" in s.entries else ""
        if not name:
            raise s.error(None, "every entry needs a name (decisions cite it)")
        s.path = f"do_not_record '{name}'"
        numbers = f.patterns(s, "numbers", numbers=True)
        if not numbers:
            raise s.error("numbers", "list at least one number or prefix")
        entries.append(DoNotRecord(name, numbers, _retention(s), line_of(node)))
    return tuple(entries)


def _opt_out(s: Section) -> OptOut:
    d = OptOut()
    dtmf: str | None = d.dtmf
    if "dtmf" in s.entries:
        node = s.entries["dtmf"][1]
        dtmf = None if kind(node) == "null" else f.raw_text(s, "dtmf", "a DTMF digit")[0]
        if dtmf is not None and not _DTMF.fullmatch(dtmf):
            raise s.error("dtmf", f"expected one DTMF key (0-9, * or #) or null, got '{dtmf}'")
    then = f.choice(s, "then", ("continue", "route"), d.then)
    when_forced = f.choice(s, "when_forced", AFTER_OPT_OUT, d.when_forced)
    route_to = s.optional_text("route_to", None, f.matches(_ROUTE, "context,extension,priority"))
    if route_to is None and "route" in (then, when_forced):
        key = "then" if then == "route" else "when_forced"
        raise s.error(key, "route needs opt_out.route_to (context,extension,priority)")
    return OptOut(dtmf, then, when_forced, route_to)


def _announcements(s: Section) -> Announcements:
    d = Announcements()
    languages = {}
    sub = s.section("languages", None)
    for prefix, (line, node) in sub.entries.items():
        try:
            key = f.e164_prefix(prefix)
        except Invalid as exc:
            raise sub.error(prefix, str(exc), line) from None
        languages[key] = f.scalar_item(sub, sub.key_path(prefix), node, "a language code")
        try:
            f.language(languages[key])
        except Invalid as exc:
            raise sub.error(prefix, str(exc), line) from None
    return Announcements(
        language=s.text("language", d.language, f.language),
        languages=MappingProxyType(languages),
        media_prefix=s.text("media_prefix", d.media_prefix, f.media_prefix),
        to_extensions=f.boolean(s, "to_extensions", d.to_extensions),
    )


def _state_map(s: Section, key: str, check_key: f.Check) -> Mapping[str, str]:
    sub = s.section(key, None)
    out = {}
    for name, (line, node) in sub.entries.items():
        try:
            out[check_key(name)] = f.state_code(
                f.scalar_item(sub, sub.key_path(name), node, "a state code")
            )
        except Invalid as exc:
            raise sub.error(name, str(exc), line) from None
    return MappingProxyType(out)


def _jurisdiction(s: Section, numbering: Numbering) -> JurisdictionConfig:
    d = JurisdictionConfig()
    states = d.all_party_states
    if "all_party_states" in s.entries:
        states = frozenset(f.words(s, "all_party_states", "a state code", f.state_code))
    regions: dict[str, Mode] = {}
    sub = s.section("regions", None)
    for region, (line, _) in sub.entries.items():
        if region not in phonenumbers.SUPPORTED_REGIONS or region == "US":
            message = f"'{region}' is not a phone region other than US (e.g. CA, GB, MX)"
            raise sub.error(region, message, line)
        regions[region] = f.choice(sub, region, MODES, "all-party")
    offices = []
    for path, node in f.items(s, "offices"):
        o = Section(s.file, s.env, path, line_of(node), node, KEYS["office"])
        name = o.text("name", "", f.name) if "name" in o.entries else ""
        if not name:
            raise o.error("name", "every office needs a name")
        o.path = f"office '{name}'"
        if "state" not in o.entries:
            raise o.error("state", "required key is missing")
        offices.append(
            Office(
                name, o.text("state", "", f.state_code), f.patterns(o, "extensions", numbers=False)
            )
        )

    names = [o.name for o in offices]

    def office_name(value: str) -> str:
        if value not in names:
            known = ", ".join(f"'{n}'" for n in names) or "none: add jurisdiction.offices"
            raise Invalid(f"no office named '{value}' (offices: {known}){suggest(value, names)}")
        return value

    def extension(value: str) -> str:
        if not re.fullmatch(numbering.extension_pattern, value):
            raise Invalid(
                f"'{value}' is not an extension (calls.extensions: {numbering.extension_pattern})"
            )
        return value

    return JurisdictionConfig(
        all_party_states=states,
        default_mode=f.choice(s, "default_mode", MODES, d.default_mode),
        regions=MappingProxyType(regions),
        offices=tuple(offices),
        default_office=s.optional_text("default_office", None, office_name),
        extensions=_state_map(s, "extensions", extension),
        numbers=_state_map(s, "numbers", f.e164_prefix),
    )


def load_policy(path: Path | None, numbering: Numbering | None = None) -> Policy:
    """The validated policy in `path`, or the built-in defaults when `path` is None."""
    numbering = numbering or Numbering()
    if path is None:
        return Policy(numbering=numbering)
    path = Path(path)
    try:
        root = Section(str(path), {}, "", 1, parse_yaml(path, PolicyError), KEYS[""])
        defaults = root.section("defaults", KEYS["defaults"])
        zone = defaults.text("time_zone", Policy.time_zone, f.time_zone)
        default_action = f.choice(defaults, "action", ("yes", "no"), Policy.default_action)
        policy = Policy(
            default_action=default_action,
            retention=_retention(defaults) or Policy.retention,
            time_zone=zone,
            rules=_rules(root, zone),
            do_not_record=_do_not_record(root),
            opt_out=_opt_out(root.section("opt_out", KEYS["opt_out"])),
            announcements=_announcements(root.section("announcements", KEYS["announcements"])),
            jurisdiction=_jurisdiction(
                root.section("jurisdiction", KEYS["jurisdiction"]), numbering
            ),
            numbering=numbering,
            retention_policy=read_retention(root.section("retention", RETENTION_KEYS)),
            path=path,
        )
        check_classes(policy, defaults)
        return policy
    except PolicyError:
        raise
    except ConfigError as exc:
        raise PolicyError(exc.file, exc.line, exc.key, exc.message) from None
