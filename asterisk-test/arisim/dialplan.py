"""Dialplan and endpoint behaviour: what the far end of a simulated channel does.

The contexts of asterisk-test/traces/asterisk-etc/extensions.conf are built in (as data), so a
Local channel such as `Local/200@targets` behaves as in the traces: `targets` answers after 1 s,
`busy` is Busy(5), `noanswer` rings, `slow-targets` rings 6 s then answers, `silent` answers at once
and stays silent; `inbound-test`/`from-trunk` enter Stasis(verbatim,inbound,EXTEN).

`Dialplan.load_conf` reads contexts from extensions.conf text (a project's shipped dialplan),
labels included, so tests run what is shipped (parse_extensions_conf).

PJSIP endpoints behave as SIP phones: Ringing, then answer after `answer_after` seconds (default
1 s, like sipp's uas_answer.xml). Tests override any endpoint with `Simulator.set_endpoint`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Result = Literal["answer", "busy", "noanswer", "unavailable", "congestion", "manual", "forward",
                 "nonexistent"]
# One priority of an extension, as Asterisk calls it: (application, data). Data may use ${EXTEN}.
Priority = tuple[str, str]

# Distinct frequencies for parties, far enough apart for tone_map's 0.1-s windows.
TONE_FREQUENCIES = (440, 700, 1000, 1300, 1600, 1900, 2200, 2500, 2800, 3100, 3400, 550, 850)

# Lengths of `sound:` media played through ARI; unknown names last `default_sound_seconds`.
DEFAULT_SOUNDS: dict[str, float] = {"beep": 0.25, "silence/1": 1.0}
# Lengths of Playback() in the built-in dialplan. The traced Asterisk had no demo-congrats file:
# Playback() failed at once and the channel went on to Wait(30) (GET /channels in busy,
# atxfer_ami_in_stasis_bridge), so a missing name here lasts 0 s.
DIALPLAN_SOUNDS: dict[str, float] = {}


@dataclass(frozen=True)
class EndpointBehaviour:
    """How a dialled endpoint answers. `ringing`: it sends 180 Ringing first (state Ringing).

    `hangup_after`: the party hangs up that many seconds after answering (None: never by itself).
    `result="nonexistent"`: no such endpoint is configured, so ast_request fails: ARI's create
    and originate answer 500 {"error": "Allocation failed"} (res_ari.c oom_json) and Dial()
    counts the line as one it could not call (CHANUNAVAIL when no other line rings).
    `tone_hz` None: a fresh frequency per channel. `sends_media`: frames flow when the party is
    alone in a bridge. `result="forward"`: `answer_after` seconds after the INVITE the phone
    answers 302 Moved Temporarily to `forward_to` ("300", or "PJSIP/300" with a technology;
    see forwards.py).
    """

    result: Result = "answer"
    answer_after: float = 1.0
    ringing: bool = True
    tone_hz: int | None = None
    sends_media: bool = True
    talking: bool = True
    hangup_after: float | None = None
    busy_hangup_after: float = 0.0  # how long a busy line stays before hanging up
    forward_to: str | None = None  # result "forward": the 302's Contact user (or tech/resource)
    # On 180 Ringing, chan_pjsip queues the RINGING frame (read by the dial bridge: Dial
    # RINGING) and sets the state (ChannelStateChange) from another thread: sip_basic shows the
    # Dial first, sip_blind_transfer_refer and sip_attended_transfer_* the state first.
    state_before_dial: bool = False


# extensions.conf of the traces: context → [(exten pattern, steps)]
BUILTIN_DIALPLAN: dict[str, list[tuple[str, list[Priority]]]] = {
    "from-trunk": [
        ("_X.", [("NoOp", "inbound call to ${EXTEN}"),
                 ("Stasis", "verbatim,inbound,${EXTEN}"), ("Hangup", "")]),
    ],
    "from-internal": [
        ("_X.", [("NoOp", "internal/outbound call to ${EXTEN}"),
                 ("Stasis", "verbatim,outbound,${EXTEN}"), ("Hangup", "")]),
    ],
    "caller": [
        ("s", [("Answer", ""), ("Playback", "demo-congrats"), ("Wait", "30"), ("Hangup", "")]),
    ],
    "targets": [
        ("busy", [("Busy", "5")]),
        ("noanswer", [("Ringing", ""), ("Wait", "60")]),
        ("_X.", [("NoOp", "target ${EXTEN} rings"), ("Wait", "1"), ("Answer", ""),
                 ("Playback", "demo-congrats"), ("Wait", "30"), ("Hangup", "")]),
    ],
    "transfer-target": [
        ("_X.", [("NoOp", "transfer to ${EXTEN}"), ("Stasis", "verbatim,transfer,${EXTEN}"),
                 ("Hangup", "")]),
    ],
    "inbound-test": [
        ("_X.", [("Stasis", "verbatim,inbound,${EXTEN}"), ("Hangup", "")]),
    ],
    "silent-caller": [
        ("s", [("Answer", ""), ("Wait", "30"), ("Hangup", "")]),
    ],
    "slow-targets": [
        ("silent", [("Answer", ""), ("Wait", "30")]),
        ("_X.", [("Ringing", ""), ("Wait", "6"), ("Answer", ""), ("Playback", "demo-congrats"),
                 ("Wait", "30")]),
    ],
}
# Contexts whose parties send no audio (Answer + Wait only).
SILENT_CONTEXTS = {("silent-caller", "s"), ("slow-targets", "silent")}
# PJSIP endpoints of pjsip.conf: their dialplan context for inbound calls / created channels.
PJSIP_CONTEXTS: dict[str, str] = {"trunk": "from-trunk"}
DEFAULT_PJSIP_CONTEXT = "from-internal"


def pattern_matches(pattern: str, exten: str) -> bool:
    """Asterisk extension patterns: `_` prefix with X, Z, N, [..], `.` and `!`."""
    if not pattern.startswith("_"):
        return pattern == exten
    rx = ""
    i = 1
    while i < len(pattern):
        c = pattern[i]
        if c == "X":
            rx += "[0-9]"
        elif c == "Z":
            rx += "[1-9]"
        elif c == "N":
            rx += "[2-9]"
        elif c == ".":
            rx += ".+"
        elif c == "!":
            rx += ".*"
        elif c == "[":
            j = pattern.index("]", i)
            rx += "[" + pattern[i + 1 : j] + "]"
            i = j
        else:
            rx += re.escape(c)
        i += 1
    return re.fullmatch(rx, exten) is not None


@dataclass(frozen=True)
class Feature:
    """An applicationmap entry of features.conf: `name => dtmf,activate_on,app(data)`."""

    name: str
    dtmf: str
    activate_on: Literal["self", "peer"]
    app: str
    app_data: str


@dataclass
class Dialplan:
    """Contexts (built-ins plus any a test adds), endpoint behaviours, sound lengths and the
    features.conf applicationmap."""

    contexts: dict[str, list[tuple[str, list[Priority]]]] = field(
        default_factory=lambda: {k: list(v) for k, v in BUILTIN_DIALPLAN.items()}
    )
    endpoints: dict[str, EndpointBehaviour] = field(default_factory=dict)
    sounds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SOUNDS))
    dialplan_sounds: dict[str, float] = field(default_factory=lambda: dict(DIALPLAN_SOUNDS))
    # How long an ARI `sound:` playback of a name not in `sounds` lasts; None: such a name is
    # a file Asterisk lacks, and its playback fails at once (recorder tests of a missing prompt)
    default_sound_seconds: float | None = 3.0
    default_behaviour: EndpointBehaviour = field(default_factory=EndpointBehaviour)
    applicationmap: dict[str, Feature] = field(default_factory=dict)
    # (context, pattern) -> label -> priority, for Goto/GotoIf/Gosub targets
    labels: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def add_extension(self, context: str, pattern: str, steps: list[Priority]) -> None:
        """Add (first in order) an extension to a context."""
        self.contexts.setdefault(context, []).insert(0, (pattern, steps))

    def load_conf(self, text: str, replace: dict[str, str] | None = None) -> list[str]:
        """Add the contexts of extensions.conf `text` (each replaces a context of that name),
        after replacing each key of `replace` by its value (e.g. a FastAGI port); returns the
        contexts' names."""
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        parsed = parse_extensions_conf(text)
        for context, extensions in parsed.items():
            self.contexts[context] = [(pattern, steps) for pattern, steps, _ in extensions]
            for pattern, _, labels in extensions:
                self.labels[(context, pattern)] = labels
        return list(parsed)

    def priority_of(self, context: str, exten: str, target: str) -> int | None:
        """A Goto/Gosub priority: a number, or a label of the extension `exten` matches."""
        if target.isdigit():
            return int(target)
        for pattern, _ in self.contexts.get(context, []):
            if pattern_matches(pattern, exten):
                return self.labels.get((context, pattern), {}).get(target)
        return None

    def lookup(self, context: str, exten: str) -> list[Priority] | None:
        for pattern, steps in self.contexts.get(context, []):
            if pattern_matches(pattern, exten):
                return [(app, data.replace("${EXTEN}", exten)) for app, data in steps]
        return None

    def sound_seconds(self, name: str) -> float | None:
        """An ARI `sound:` playback's length; None: Asterisk has no such file."""
        return self.sounds.get(name, self.default_sound_seconds)

    def playback_seconds(self, name: str) -> float:
        """Playback() in the dialplan (or AGI EXEC): `dialplan_sounds`, then `sounds`; a name
        in neither is a missing file and lasts 0 s (see DIALPLAN_SOUNDS)."""
        if name in self.dialplan_sounds:
            return self.dialplan_sounds[name]
        return self.sounds.get(name, 0.0)

    def stream_seconds(self, name: str) -> float | None:
        """AGI STREAM FILE: `dialplan_sounds`, then `sounds` (unknown: default_sound_seconds,
        as ARI `sound:` media); None: Asterisk has no such file."""
        if name in self.dialplan_sounds:
            return self.dialplan_sounds[name]
        return self.sound_seconds(name)

    def behaviour_for(self, endpoint: str) -> EndpointBehaviour | None:
        """An explicit behaviour for `PJSIP/201` or `Local/200@targets`, if a test set one."""
        return self.endpoints.get(endpoint)

    def not_configured(self, endpoint: str) -> bool:
        """Whether a test made `endpoint` one Asterisk has not configured (ast_request fails)."""
        b = self.endpoints.get(endpoint)
        return b is not None and b.result == "nonexistent"


ConfExtension = tuple[str, list[Priority], dict[str, int]]  # pattern, steps, labels
_CONF_LINE = re.compile(r"^(exten|same)\s*=>?\s*(.*)$")
_PRIORITY = re.compile(r"^(\d+|n)(?:\(([A-Za-z0-9_-]+)\))?$")


def parse_extensions_conf(text: str) -> dict[str, list[ConfExtension]]:
    """The contexts of extensions.conf text (pbx_config.c): `[context]`, `exten =>
    pattern,priority,App(data)` and `same => ...`; a priority is a number or `n` (the previous
    one plus one) with an optional `(label)`; `;` starts a comment (`\\;` is a literal one).
    What the shipped files do not use (include, switch, hints, `n+2`) is an error."""
    contexts: dict[str, list[ConfExtension]] = {}
    current: list[ConfExtension] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(?<!\\);.*$", "", raw).replace("\\;", ";").strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = contexts.setdefault(line[1:-1].strip(), [])
            continue
        m = _CONF_LINE.match(line)
        if m is None or current is None:
            raise ValueError(f"line {number}: not simulated: {raw.strip()!r}")
        parts = m.group(2).split(",", 2) if m.group(1) == "exten" else \
            ["", *m.group(2).split(",", 1)]
        if len(parts) != 3:
            raise ValueError(f"line {number}: expected pattern,priority,application")
        pattern, prio, call = (p.strip() for p in parts)
        if m.group(1) == "exten" and (not current or current[-1][0] != pattern):
            current.append((pattern, [], {}))
        elif not current:
            raise ValueError(f"line {number}: 'same' before any 'exten'")
        _, steps, labels = current[-1]
        pm = _PRIORITY.match(prio)
        if pm is None or (pm.group(1) != "n" and int(pm.group(1)) != len(steps) + 1):
            raise ValueError(f"line {number}: priority {prio!r} is not the next one")
        if pm.group(2):
            labels[pm.group(2)] = len(steps) + 1
        steps.append(parse_app_call(call))
    return contexts


def parse_local(resource: str) -> tuple[str, str]:
    """`200@targets` → (exten, context); no context → "default" (core_local.c)."""
    resource = resource.split("/", 1)[0]
    if "@" in resource:
        exten, context = resource.split("@", 1)
        return exten, context or "default"
    return resource, "default"


def parse_callerid(value: str) -> tuple[str, str]:
    """(name, number) from `"Client" <+14155550100>` or `+14155550100` (main/callerid.c)."""
    value = value.strip()
    m = re.match(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$', value)
    if m:
        name, number = m.group(1).strip(), m.group(2).strip()
    elif re.fullmatch(r"[0-9+*#()\-. ]+", value):
        name, number = "", value
    else:
        name, number = value.strip('"'), ""
    if re.fullmatch(r"\+?[0-9()\-. ]+", number):  # ast_shrink_phone_number
        number = re.sub(r"[()\-. ]", "", number)
    return name, number


def split_app_args(data: str, sep: str = ",") -> list[str]:
    """Application arguments as main/app.c ast_app_separate_args splits them: on `sep`, not
    inside parentheses, brackets or double quotes (quotes are removed, backslash escapes)."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for c in data:
        if escaped:
            cur.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif quoted:
            cur.append(c)
        elif c in "([":
            depth += 1
            cur.append(c)
        elif c in ")]" and depth > 0:
            depth -= 1
            cur.append(c)
        elif c == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def parse_options(text: str) -> dict[str, str]:
    """Application option letters with optional `(argument)`: "gU(sub^a)" → {"g": "",
    "U": "sub^a"} (main/app.c ast_app_parse_options)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        letter = text[i]
        i += 1
        arg = ""
        if i < len(text) and text[i] == "(":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            arg = text[i + 1 : j - 1] if depth == 0 else text[i + 1 :]
            i = j
        out[letter] = arg
    return out


def parse_app_call(text: str) -> tuple[str, str]:
    """"AGI(agi://host/x,a)" → ("AGI", "agi://host/x,a"); "NoOp" → ("NoOp", "")."""
    text = text.strip()
    if "(" in text and text.endswith(")"):
        name, _, rest = text.partition("(")
        return name.strip(), rest[:-1]
    return text, ""
