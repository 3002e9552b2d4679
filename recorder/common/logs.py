"""Logging: structlog, one JSON object per line (or a console format for people).

Each line has "timestamp" (ISO 8601, UTC), "level", "event", "logger" when the logger was named,
and the bound fields, including those bound with structlog.contextvars.bind_contextvars (e.g.
call_id, channel_id), so every line of a call can be found by its id. Other libraries' stdlib
logging (aiohttp, asyncpg, asyncio) is rendered into the same stream from warning up: their
debug and info are noise here, their warnings are not.

`redact_secrets` is a safety net, not the protection: secrets travel as config.Secret, whose
repr is masked, and nobody should log them at all.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["LEVELS", "REDACTED", "bound", "configure_logging", "redact_secrets"]

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
REDACTED: Final = "***"
# Key names whose values are never logged: ari_password, db_dsn, Authorization, access_token...
_SECRET_KEY = re.compile(r"passw(?:or)?d|secret|token|dsn|authorization", re.IGNORECASE)
# The password in "scheme://user:password@host", e.g. a DSN quoted in an asyncpg error message.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):[^\s/@]*@")
_FOREIGN_LEVEL: Final = logging.WARNING
_META: Final = ("_record", "_from_structlog")  # ProcessorFormatter's bookkeeping, not output
_FIRST: Final = ("timestamp", "level", "logger", "event")
_PLAIN: Final = frozenset({int, float, bool, type(None)})

_handler: logging.Handler | None = None  # ours on the root logger, replaced on reconfiguration


@functools.lru_cache(maxsize=4096)
def _secret(key: str) -> bool:
    """Whether a field of this name is never logged (a log line's keys are few and recur)."""
    return _SECRET_KEY.search(key) is not None


def _redact(value: Any) -> Any:
    # Copies rather than edits: a dict passed as a log field is often still in use by the caller
    # (e.g. request headers).
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", value) if "://" in value else value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _secret(k) else _redact(v)
            for k, v in value.items()
        }
    if type(value) in (list, tuple):  # exactly: a namedtuple cannot be rebuilt from one iterable
        return type(value)(_redact(v) for v in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: "***" for the value of any key named like a secret, at any depth, and for the
    password part of URLs in strings."""
    for key, value in event_dict.items():
        if key in _META:
            continue
        if _secret(key):
            event_dict[key] = REDACTED
        elif type(value) in _PLAIN or (type(value) is str and "://" not in value):
            continue  # nothing in it to redact (most fields): no copy
        else:
            event_dict[key] = _redact(value)
    return event_dict


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def _fallback(value: Any) -> Any:
    """What JSON cannot hold as it is: its __structlog__ form, or its repr (as structlog's
    JSONRenderer does)."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_fallback)


def _render_json(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """One compact JSON object, timestamp, level, logger and event first (the order a person
    scans a line in). msgspec: a third of the stdlib encoder's time; a line it cannot encode
    (a key JSON cannot hold, an integer past 64 bits) or that is not ASCII goes through the
    stdlib's, so the line stays ASCII whatever the stream's encoding."""
    line = {k: event_dict.pop(k) for k in _FIRST if k in event_dict}
    line.update(event_dict)
    try:
        text = _ENCODER.encode(line).decode()
        if text.isascii():
            return text
    except (TypeError, ValueError, OverflowError):
        pass
    return json.dumps(line, default=_fallback, separators=(",", ":"))


class _NamedWriteLogger(structlog.WriteLogger):
    """WriteLogger that keeps the name given to get_logger("verbatim.ari") for the output."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    """One logger per name, made once: loggers are not cached by structlog (see
    configure_logging), and making one costs more than rendering a line."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._made: dict[str | None, _NamedWriteLogger] = {}

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = str(args[0]) if args else None
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = _NamedWriteLogger(self._file, name)
        return made


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO = sys.stderr) -> None:
    """Send structlog and stdlib logging to `stream` as JSON lines or console text.

    Safe to call again (tests, or reconfiguring once the config is read): it replaces what an
    earlier call installed and leaves other root handlers alone.
    """
    global _handler
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; expected json or console")
    threshold = LEVELS[level.lower()]

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    render: list[Processor]
    if fmt == "json":
        # Tracebacks become a string field before redaction, so URLs in them are scrubbed too.
        shared.append(structlog.processors.format_exc_info)
        render = [_render_json]
    else:  # the console renderer formats exceptions itself (and warns if format_exc_info ran)
        # plainly: rich's tracebacks (when rich is installed) print every frame's locals,
        # which hold bearer tokens, session cookies and passwords, past redact_secrets
        render = [structlog.dev.ConsoleRenderer(
            colors=_is_tty(stream), exception_formatter=structlog.dev.plain_traceback)]
    shared.append(redact_secrets)

    structlog.configure(
        processors=[*shared, *render],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_NamedWriteLoggerFactory(stream),
        context_class=dict,
        # Not cached: module-level loggers must follow a later configure_logging (tests do it).
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(max(threshold, _FOREIGN_LEVEL))
    _handler = handler


# name -> (the configuration it was bound under: processors, wrapper class, logger factory; the
# logger bound)
_BOUND: dict[str, tuple[object, object, object, Any]] = {}


def bound(name: str) -> Any:
    """structlog's logger `name`, bound once per configuration (configure_logging; a test's
    capture_logs changes the processors' list in place, which a bound logger shares). For what
    logs at every step: a module's `get_logger` proxy binds a new logger at each call, as
    loggers are not cached (see configure_logging), which costs more than a line whose level
    is filtered out (the call model's debug lines: ten a call)."""
    config = structlog.get_config()
    made = _BOUND.get(name)
    if (made is None or made[0] is not config["processors"]
            or made[1] is not config["wrapper_class"] or made[2] is not config["logger_factory"]):
        made = _BOUND[name] = (config["processors"], config["wrapper_class"],
                               config["logger_factory"], structlog.get_logger(name).bind())
    return made[3]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like objects without isatty
        return False
