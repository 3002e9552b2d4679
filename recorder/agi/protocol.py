"""FastAGI wire format, parsed without I/O: the environment Asterisk sends, its responses, quoting.

What res_agi.c (Asterisk 22) does, which the parsing follows:

- The environment is `key: value` lines, then an empty line. A FastAGI connection starts with
  `agi_network: yes` and, when the URL has a path, `agi_network_script: <path after host:port/>`
  (query included); then `agi_request`, `agi_channel`, ... and `agi_arg_1`, `agi_arg_2`, ...
  Empty values are sent as `key: ` (agi_accountcode usually is), so only the line end is stripped.
- A response is one line, `200 result=<n> [(data)] [endpos=<n>]`, `510 Invalid or unknown
  command`, `511 Command Not Permitted on a dead channel or intercept routine`, or the one
  multi-line form: `520-Invalid command syntax.  Proper usage follows:`, the usage text,
  `520 End of proper usage.`.
- Commands are split into words by parse_args(): a double quote starts or ends a quoted word and a
  backslash makes the next character literal. Nothing escapes a line end: a newline inside a value
  would end the command and start another one, which is why quote() refuses control characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "AgiCommandError",
    "AgiError",
    "AgiHangup",
    "AgiProtocolError",
    "AgiRequest",
    "AgiResponse",
    "parse_env",
    "parse_multiline_response",
    "parse_response",
    "quote",
    "starts_multiline",
]

DEFAULT_MAX_HEADERS: Final = 128
REQUIRED: Final = ("agi_uniqueid", "agi_channel", "agi_network_script")
_KEY = re.compile(r"agi_[a-z0-9_]+\Z")
_ARG = re.compile(r"agi_arg_([1-9][0-9]*)\Z")
_STATUS = re.compile(r"(?P<code>[0-9]{3})(?P<sep>[ -])(?P<rest>.*)\Z", re.DOTALL)
# Greedy data: a variable's value may itself hold parentheses; endpos is only ever last.
_RESULT = re.compile(
    r"result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?: endpos=(?P<endpos>-?[0-9]+))?\Z", re.DOTALL
)
_SHOWN: Final = 60  # characters of an offending line quoted in an error: enough to recognise it


class AgiError(Exception):
    """Base of the errors of an AGI session."""


class AgiProtocolError(AgiError):
    """The peer sent something that is not AGI (or too much, or too late): the session is over."""


class AgiHangup(AgiError):
    """The channel hung up (a `HANGUP` line or a 511), or Asterisk closed the connection."""

    def __init__(self, message: str, response: AgiResponse | None = None) -> None:
        super().__init__(message)
        self.response = response


class AgiCommandError(AgiError):
    """A well-formed response that is not the success the command needed (510, 520, result=-1)."""

    def __init__(self, message: str, response: AgiResponse) -> None:
        super().__init__(message)
        self.response = response


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


@dataclass(frozen=True)
class AgiRequest:
    """One FastAGI request: the environment as sent, and the parts a hook needs.

    Asterisk always sends the headers behind the properties; "" stands for one that is absent.
    An absent caller number or name arrives as "unknown", as Asterisk writes it."""

    env: Mapping[str, str]
    script: str  # the hook name: agi_network_script without its leading "/" and query
    query: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()

    @property
    def uniqueid(self) -> str:
        return self.env["agi_uniqueid"]

    @property
    def channel(self) -> str:
        return self.env["agi_channel"]

    @property
    def callerid(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def calleridname(self) -> str:
        return self.env.get("agi_calleridname", "")

    @property
    def context(self) -> str:
        return self.env.get("agi_context", "")

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")

    @property
    def dnid(self) -> str:
        return self.env.get("agi_dnid", "")


def parse_env(lines: Sequence[str], *, max_headers: int = DEFAULT_MAX_HEADERS) -> AgiRequest:
    """The request from the environment lines (line ends and the final empty line removed)."""
    if len(lines) > max_headers:
        raise AgiProtocolError(f"too many headers: more than {max_headers}")
    env: dict[str, str] = {}
    args: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        key, sep, value = line.partition(": ")
        if not sep:
            raise AgiProtocolError(f"line {number}: not 'key: value': {_shown(line)}")
        if not _KEY.match(key):
            raise AgiProtocolError(f"line {number}: not an agi_ header name: {_shown(key)}")
        if key in env:  # only the key is shown: values are the caller's data
            raise AgiProtocolError(f"line {number}: duplicate header {key!r}")
        env[key] = value
        if key.startswith("agi_arg_"):
            if not (arg := _ARG.match(key)):
                raise AgiProtocolError(f"line {number}: not an agi_arg_N name: {_shown(key)}")
            args[int(arg.group(1))] = value
    for key in REQUIRED:
        if not env.get(key):
            raise AgiProtocolError(f"missing or empty header {key!r}")
    if sorted(args) != list(range(1, len(args) + 1)):
        raise AgiProtocolError(f"agi_arg_N not numbered 1..{len(args)}: {sorted(args)}")
    path, _, query_text = env["agi_network_script"].partition("?")
    script = path.lstrip("/")
    if not script:
        raise AgiProtocolError(f"no hook name in agi_network_script: {_shown(path)}")
    query: dict[str, str] = {}
    for name, value in parse_qsl(query_text, keep_blank_values=True):
        if name in query:
            raise AgiProtocolError(f"duplicate query parameter {name!r}")
        query[name] = value
    return AgiRequest(
        env=MappingProxyType(env),
        script=script,
        query=query,
        args=tuple(args[n] for n in sorted(args)),
    )


@dataclass(frozen=True)
class AgiResponse:
    """One response. `result` is the text after "result=" (a number, or GET DATA's digits);
    None for responses other than 200, whose text is in `data`."""

    code: int
    result: str | None
    data: str | None
    endpos: int | None
    raw: str

    @property
    def result_int(self) -> int:
        """The result as a number (what most commands return)."""
        try:
            return int(self.result or "")
        except ValueError:
            raise AgiProtocolError(f"result is not a number: {_shown(self.raw)}") from None


def starts_multiline(line: str) -> bool:
    """True for the first line of a multi-line response ("520-...")."""
    match = _STATUS.match(line)
    return match is not None and match["sep"] == "-"


def parse_response(line: str) -> AgiResponse:
    """One single-line response."""
    match = _STATUS.match(line)
    if match is None or match["sep"] != " ":
        raise AgiProtocolError(f"not an AGI response: {_shown(line)}")
    code, rest = int(match["code"]), match["rest"]
    if code != 200:
        return AgiResponse(code=code, result=None, data=rest, endpos=None, raw=line)
    result = _RESULT.match(rest)
    if result is None:
        raise AgiProtocolError(f"200 response without result=: {_shown(line)}")
    endpos = result["endpos"]
    return AgiResponse(
        code=code,
        result=result["result"],
        data=result["data"],
        endpos=int(endpos) if endpos is not None else None,
        raw=line,
    )


def parse_multiline_response(lines: Sequence[str]) -> AgiResponse:
    """A multi-line response: "NNN-text", body lines, "NNN text"; `data` is the body."""
    if len(lines) < 2 or not starts_multiline(lines[0]):
        raise AgiProtocolError(f"not a multi-line response: {_shown(lines[0] if lines else '')}")
    code = lines[0][:3]
    if not lines[-1].startswith(code + " "):
        raise AgiProtocolError(f"multi-line response not ended by {code!r}: {_shown(lines[-1])}")
    return AgiResponse(
        code=int(code), result=None, data="\n".join(lines[1:-1]), endpos=None, raw="\n".join(lines)
    )


def one_line(value: str) -> str:
    """`value` with its control characters as spaces: text `quote` takes (a reply's wording
    must never cost the reply)."""
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in value)


def quote(value: str) -> str:
    """`value` as one quoted AGI argument; ValueError for control characters (a line end would
    inject a second command, a NUL would cut the line short)."""
    for char in value:
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"control character {char!r} in AGI argument {_shown(value)}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
