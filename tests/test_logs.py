"""recorder.common.logs: JSON lines on the stream, contextvars, stdlib routing, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars
from structlog.testing import capture_logs

from recorder.common import logs
from recorder.common.logs import configure_logging, redact_secrets
from recorder.config import Secret


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    clear_contextvars()
    yield
    clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _configure(level: str = "info", fmt: str = "json") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, fmt, stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is one JSON object


def test_json_line_has_timestamp_level_event_and_fields() -> None:
    stream = _configure()
    structlog.get_logger("verbatim.test").bind(call_id="c-1").info("call.started", legs=2)
    [line] = _lines(stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info"
    assert line["logger"] == "verbatim.test"
    assert line["event"] == "call.started"
    assert (line["call_id"], line["legs"]) == ("c-1", 2)
    assert line["timestamp"].endswith("Z")  # ISO 8601, UTC
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_unnamed_logger_has_no_logger_field() -> None:
    stream = _configure()
    structlog.get_logger().warning("x")
    [line] = _lines(stream)
    assert "logger" not in line
    assert line["level"] == "warning"


def test_contextvars_appear_on_every_line_including_stdlib() -> None:
    stream = _configure()
    log = structlog.get_logger("verbatim.test")
    bind_contextvars(call_id="call-42", channel_id="chan-7")
    log.info("one")
    log.error("two", extra_field=1)
    logging.getLogger("aiohttp.client").warning("three")
    clear_contextvars()
    log.info("four")
    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["one", "two", "three", "four"]
    for line in lines[:3]:
        assert (line["call_id"], line["channel_id"]) == ("call-42", "chan-7")
    assert "call_id" not in lines[3]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", ["d", "i", "w", "e"]),
        ("info", ["i", "w", "e"]),
        ("INFO", ["i", "w", "e"]),
        ("warning", ["w", "e"]),
        ("error", ["e"]),
    ],
)
def test_level_filters_our_lines(level: str, expected: list[str]) -> None:
    stream = _configure(level)
    log = structlog.get_logger("verbatim.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in _lines(stream)] == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        # other libraries stay at warning even when we debug: their debug/info is noise
        ("debug", ["w", "e"]),
        ("info", ["w", "e"]),
        ("error", ["e"]),
    ],
)
def test_stdlib_logging_is_routed_from_warning_up(level: str, expected: list[str]) -> None:
    stream = _configure(level)
    for name in ("aiohttp.access", "asyncpg.pool"):
        lib = logging.getLogger(name)
        lib.debug("d")
        lib.info("i")
        lib.warning("w")
        lib.error("e")
    lines = _lines(stream)
    names = {"w": "warning", "e": "error"}
    got = [(line["logger"], line["level"], line["event"]) for line in lines]
    assert got == [
        (logger, names[event], event)
        for logger in ("aiohttp.access", "asyncpg.pool")
        for event in expected
    ]


def test_stdlib_message_arguments_are_formatted() -> None:
    stream = _configure()
    logging.getLogger("aiohttp.client").warning("retry %d of %s", 2, "pbx")
    [line] = _lines(stream)
    assert line["event"] == "retry 2 of pbx"
    assert "timestamp" in line


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "ari_password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "dsn",
        "database_dsn",
        "authorization",
        "Authorization",
        "proxy-authorization",
    ],
)
def test_secret_named_keys_are_redacted(key: str) -> None:
    stream = _configure()
    structlog.get_logger().info("login", **{key: "hunter2", "user": "alice"})
    [line] = _lines(stream)
    assert line[key] == "***"
    assert line["user"] == "alice"
    assert "hunter2" not in stream.getvalue()


def test_redaction_reaches_nested_values_without_changing_them() -> None:
    stream = _configure()
    headers = {"Authorization": "Basic aHVudGVyMg==", "Accept": "application/json"}
    calls = [{"token": "t0ken", "id": 1}, ("x", {"secret": "s"})]
    structlog.get_logger().info("request", headers=headers, calls=calls)
    [line] = _lines(stream)
    assert line["headers"] == {"Authorization": "***", "Accept": "application/json"}
    assert line["calls"] == [{"token": "***", "id": 1}, ["x", {"secret": "***"}]]
    # the caller's objects are untouched: they may still be in use
    assert headers["Authorization"] == "Basic aHVudGVyMg=="
    assert calls[0] == {"token": "t0ken", "id": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("postgresql://verbatim:hunter2@db:5432/v", "postgresql://verbatim:***@db:5432/v"),
        ("connect to postgres://u:p@h/x failed", "connect to postgres://u:***@h/x failed"),
        ("http://user:pw@pbx:8088/ari", "http://user:***@pbx:8088/ari"),
        ("http://pbx:8088/ari", "http://pbx:8088/ari"),  # no credentials: unchanged
        ("no url here", "no url here"),
    ],
)
def test_passwords_in_urls_are_redacted(value: str, expected: str) -> None:
    stream = _configure()
    structlog.get_logger().warning(value, target=value)
    [line] = _lines(stream)
    assert (line["event"], line["target"]) == (expected, expected)


def test_stdlib_lines_are_redacted() -> None:
    stream = _configure()
    logging.getLogger("asyncpg").error("cannot connect to %s", "postgresql://u:hunter2@db/v")
    [line] = _lines(stream)
    assert line["event"] == "cannot connect to postgresql://u:***@db/v"


def test_secret_objects_log_masked() -> None:
    stream = _configure()
    structlog.get_logger().info("cfg", value=Secret("hunter2"))
    [line] = _lines(stream)
    assert line["value"] == "Secret('***')"


def test_exceptions_are_one_json_line_and_redacted() -> None:
    stream = _configure()
    log = structlog.get_logger("verbatim.test")
    try:
        raise ConnectionError("postgresql://u:hunter2@db/v refused")
    except ConnectionError:
        log.exception("db.failed")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    ours, theirs = _lines(stream)
    assert ours["level"] == "error"
    assert "Traceback" in ours["exception"]
    assert "ConnectionError: postgresql://u:***@db/v refused" in ours["exception"]
    assert "hunter2" not in stream.getvalue()
    assert theirs["logger"] == "asyncio"
    assert "ValueError: boom" in theirs["exception"]


def test_console_format_is_for_people_and_still_redacted() -> None:
    stream = _configure(fmt="console")
    bind_contextvars(call_id="call-42")
    structlog.get_logger("verbatim.test").info("call.started", password="hunter2")
    logging.getLogger("aiohttp.client").warning("slow")
    text = stream.getvalue()
    lines = text.splitlines()
    assert len(lines) == 2
    assert "call.started" in lines[0] and "call_id=call-42" in lines[0]
    assert "password=***" in lines[0]
    assert "slow" in lines[1] and "aiohttp.client" in lines[1]
    assert "hunter2" not in text
    assert "\x1b[" not in text  # no colours when the stream is not a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])


def test_console_tracebacks_show_no_frame_locals() -> None:
    """rich (installed with the test extras) prints each frame's locals in its tracebacks:
    a bearer token in a request handler's frame went to the log (API audit)."""
    stream = _configure(fmt="console")

    def handler(header: str) -> None:
        raise ValueError("boom")

    token = "-".join(("vbt_secret", "token"))  # not in any source line a traceback quotes
    try:
        handler(f"Bearer {token}")
    except ValueError:
        structlog.get_logger("verbatim.test").exception("api.internal_error")
    text = stream.getvalue()
    assert "ValueError: boom" in text and "Traceback" in text
    assert "vbt_secret-token" not in text


def test_reconfiguring_replaces_the_previous_setup() -> None:
    first = _configure()
    second = _configure()
    logging.getLogger("aiohttp").warning("once")
    structlog.get_logger().info("here")
    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["once", "here"]


def test_module_level_logger_follows_reconfiguration() -> None:
    log = structlog.get_logger("verbatim.module")  # as modules do at import time
    first = _configure()
    log.info("a")
    second = _configure()
    log.info("b")
    assert [line["event"] for line in _lines(first)] == ["a"]
    assert [line["event"] for line in _lines(second)] == ["b"]


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "text")])
def test_bad_arguments(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt, io.StringIO())


def test_capture_logs_sees_events_contextvars_and_redaction() -> None:
    configure_logging("info", "json", io.StringIO())
    bind_contextvars(call_id="call-42")
    processors = [structlog.contextvars.merge_contextvars, redact_secrets]
    with capture_logs(processors=processors) as logs:
        structlog.get_logger().info("call.started", token="t0ken", legs=1)
    assert logs == [
        {
            "event": "call.started",
            "log_level": "info",
            "call_id": "call-42",
            "token": "***",
            "legs": 1,
        }
    ]


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Zoë Müller", "Zoë Müller"),  # written \u-escaped: the line stays ASCII
        (_Opaque(), "<opaque>"),  # no JSON form: its repr
        ({1: "a", "b": [2.5, None, True]}, {"1": "a", "b": [2.5, None, True]}),
        (datetime(2026, 12, 6, 18, 0, tzinfo=UTC), "2026-12-06T18:00:00Z"),
        (2**70, 2**70),  # past 64 bits
        (("a", 1), ["a", 1]),
    ],
)
def test_field_values_render_as_json(value: object, expected: object) -> None:
    stream = _configure()
    structlog.get_logger("verbatim.test").info("x", field=value)
    [line] = _lines(stream)
    assert line["field"] == expected
    assert stream.getvalue().isascii()


def test_a_bound_logger_follows_each_configuration() -> None:
    first = _configure("info")
    logs.bound("verbatim.test").debug("filtered")
    logs.bound("verbatim.test").info("one")
    second = _configure("debug")  # a new stream and level: bound again
    logs.bound("verbatim.test").debug("two")
    with capture_logs() as captured:  # the processors' list changed in place
        logs.bound("verbatim.test").info("captured")
    logs.bound("verbatim.test").warning("three")
    assert [(x["logger"], x["event"]) for x in _lines(first)] == [("verbatim.test", "one")]
    assert [x["event"] for x in _lines(second)] == ["two", "three"]
    assert [x["event"] for x in captured] == ["captured"]
