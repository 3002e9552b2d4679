"""recorder.agi.server over real TCP on 127.0.0.1: the test plays Asterisk with asyncio streams.

It sends the environment as res_agi.c does, reads each command line the server sends and answers
with Asterisk's exact response lines. After every misbehaving peer the test checks that the server
still serves the next connection (`assert_serves`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from recorder.agi import (
    AgiCommandError,
    AgiHangup,
    AgiLimits,
    AgiProtocolError,
    AgiResponse,
    AgiServer,
    AgiSession,
    Handler,
)
from tests.harness.agi import UNIQUEID, FakeAsterisk, env_lines

USAGE = [
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
    "520 End of proper usage.",
]
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


async def ping(session: AgiSession) -> None:
    await session.set_variable("PONG", session.request.uniqueid)


async def assert_serves(port: int) -> None:
    fake = await FakeAsterisk.connect(port)
    await fake.send_env("ping", uniqueid="1700000001.99")
    await fake.expect('SET VARIABLE PONG "1700000001.99"', "200 result=1")
    await fake.expect_closed()
    await fake.close()


async def wait_idle(server: AgiServer) -> None:
    """Until the server has finished with every connection (it has no event for that)."""
    async with asyncio.timeout(2):
        while server.sessions:  # noqa: ASYNC110 - polling a counter, bounded by the timeout
            await asyncio.sleep(0.005)


StartServer = Callable[..., Awaitable[tuple[AgiServer, int]]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    servers: list[AgiServer] = []

    async def start(handlers: Mapping[str, Handler], **limits: Any) -> tuple[AgiServer, int]:
        server = AgiServer({"ping": ping, **handlers}, port=0, limits=AgiLimits(**limits))
        host, port = await server.start()
        assert host == "127.0.0.1" and port > 0
        servers.append(server)
        return server, port

    yield start
    for server in servers:
        await server.stop()


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_session_runs_the_hook(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        seen["request"] = session.request
        seen["target"] = await session.get_variable("VERBATIM_TARGET")
        seen["unset"] = await session.get_variable("NOT_SET")
        seen["empty"] = await session.get_variable("EMPTY")
        await session.set_variable("VERBATIM_STATUS", 'OK "quoted" \\')
        seen["digit"] = await session.stream_file("verbatim/consent-en", "1#")
        seen["no_digit"] = await session.stream_file("verbatim/beep")
        await session.verbose("recording started")
        seen["answer"] = await session.command("ANSWER")

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env("record?dir=in&to=%2B1415")
        await fake.expect("GET VARIABLE VERBATIM_TARGET", "200 result=1 (201)")
        assert server.sessions == 1
        await fake.expect("GET VARIABLE NOT_SET", "200 result=0")
        await fake.expect("GET VARIABLE EMPTY", "200 result=1 ()")
        await fake.expect(r'SET VARIABLE VERBATIM_STATUS "OK \"quoted\" \\"', "200 result=1")
        await fake.expect('STREAM FILE "verbatim/consent-en" "1#"', "200 result=49 endpos=8000")
        await fake.expect('STREAM FILE "verbatim/beep" ""', "200 result=0 endpos=1600")
        await fake.expect('VERBOSE "recording started" 1', "200 result=1")
        await fake.expect("ANSWER", "200 result=0")
        await fake.expect_closed()
    await fake.close()

    request = seen["request"]
    assert (request.script, request.query, request.args) == (
        "record",
        {"dir": "in", "to": "+1415"},
        ("inbound", "201"),
    )
    assert (request.uniqueid, request.channel) == (UNIQUEID, "PJSIP/201-00000001")
    assert seen["target"] == "201"
    assert seen["unset"] is None
    assert seen["empty"] == ""
    assert seen["digit"] == "1"
    assert seen["no_digit"] is None
    assert seen["answer"] == AgiResponse(200, "0", None, None, "200 result=0")
    await wait_idle(server)
    assert not events(logs, "agi.hook_failed")
    assert "Alice Private" not in repr(logs)  # caller data stays out of the logs
    await assert_serves(port)


@pytest.mark.parametrize(
    ("lines", "error", "channel_id"),
    [
        (
            ["agi_network: yes", "agi_uniqueid: 1.5", "agi_channel PJSIP/1"],
            "line 3: not 'key: v",
            "1.5",
        ),
        (["agi_uniqueid: 1.5", "agi_channel:"], "line 2: not 'key: value': 'agi_channel:'", "1.5"),
        (["agi_channel:", "agi_uniqueid: 1.5"], "line 1: not 'key: value'", "1.5"),
        (["foo: bar"], "line 1: not an agi_ header name: 'foo'", None),
        (["GET VARIABLE X"], "line 1: not 'key: value'", None),
        (
            ["agi_uniqueid: 1.5", "agi_callerid: s3cret", "agi_callerid: s3cret"],
            "line 3: duplicate header 'agi_callerid'",
            "1.5",
        ),
        (
            [line for line in env_lines() if "uniqueid" not in line],
            "missing or empty header 'agi_uniqueid'",
            None,
        ),
        (
            [line for line in env_lines() if "script" not in line],
            "missing or empty header 'agi_network_script'",
            UNIQUEID,
        ),
        ([*env_lines(), *(f"agi_x{i}: 1" for i in range(110))], "too many headers", UNIQUEID),
    ],
)
async def test_bad_headers_close_without_a_command(
    start_server: StartServer, lines: list[str], error: str, channel_id: str | None
) -> None:
    server, port = await start_server({"record": ping})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send(*lines, "")
        await fake.expect_closed()  # no SET VARIABLE: nothing trustworthy to answer to
        await wait_idle(server)
    await fake.close()
    [bad] = events(logs, "agi.bad_request")
    assert error in bad["error"]
    assert bad["log_level"] == "warning"
    assert bad["peer"].startswith("127.0.0.1:")
    assert bad["channel_id"] == channel_id
    assert "s3cret" not in repr(logs)
    await assert_serves(port)


async def test_connection_closed_inside_the_headers(start_server: StartServer) -> None:
    server, port = await start_server({})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send(*env_lines()[:5])
        await fake.close()
        await wait_idle(server)
    [bad] = events(logs, "agi.bad_request")
    assert bad["error"] == "connection closed after 5 header lines"
    assert bad["channel_id"] is None  # agi_uniqueid had not arrived yet
    await assert_serves(port)


async def test_a_port_check_is_no_bad_request(start_server: StartServer) -> None:
    """A connection that closes before a byte (a health check of the port, a scanner) is no
    AGI client: nothing for ops (before: agi.bad_request, a warning, at every check)."""
    server, port = await start_server({})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.close()
        await wait_idle(server)
    assert [(x["event"], x["log_level"]) for x in logs] == [("agi.probed", "debug")]
    await assert_serves(port)


async def test_unknown_hook_is_told_to_the_dialplan(start_server: StartServer) -> None:
    server, port = await start_server({"record": ping})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env("nosuch?x=1")
        await fake.expect('SET VARIABLE VERBATIM_STATUS "ERROR"', "200 result=1")
        await fake.expect("SET VARIABLE VERBATIM_ERROR \"unknown hook 'nosuch'\"", "200 result=1")
        await fake.expect_closed()
        await wait_idle(server)
    await fake.close()
    [unknown] = events(logs, "agi.unknown_hook")
    assert (unknown["script"], unknown["channel_id"]) == ("nosuch", UNIQUEID)
    await assert_serves(port)


async def test_oversized_line_closes_and_the_server_goes_on(start_server: StartServer) -> None:
    server, port = await start_server({"record": ping})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send(*env_lines()[:8])
        with contextlib.suppress(ConnectionError):  # the server may reset while we still write
            fake.writer.write(b"x" * 100_000)
            await fake.writer.drain()
        await fake.expect_closed()
        await wait_idle(server)
    await fake.close()
    [bad] = events(logs, "agi.bad_request")
    assert bad["error"] == "line longer than 4096 bytes"
    assert bad["channel_id"] == UNIQUEID
    await assert_serves(port)


async def test_stalled_headers_time_out(start_server: StartServer) -> None:
    server, port = await start_server({"record": ping}, header_timeout_s=0.2)
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        started = time.monotonic()
        await fake.send(*env_lines()[:10])  # then nothing, not even the empty line
        await fake.expect_closed()
        elapsed = time.monotonic() - started
        await wait_idle(server)
    await fake.close()
    assert 0.15 < elapsed < 1.5
    [bad] = events(logs, "agi.bad_request")
    assert bad["error"] == "headers not complete within 0.2 s (10 lines)"
    assert bad["channel_id"] == UNIQUEID
    await assert_serves(port)


@pytest.mark.parametrize(
    ("partial", "error", "event"),
    [
        ("", AgiHangup, "agi.hangup"),  # Asterisk closed: AGIEXITONHANGUP, or it went away
        ("200 resu", AgiProtocolError, "agi.hook_failed"),  # cut inside a response line
    ],
)
async def test_peer_disconnects_mid_command(
    start_server: StartServer, partial: str, error: type[Exception], event: str
) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        try:
            await session.get_variable("VERBATIM_TARGET")
        except Exception as exc:
            seen.update(error=exc, usable=session.usable)
            raise

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env()
        await fake.expect("GET VARIABLE VERBATIM_TARGET")
        fake.writer.write(partial.encode())
        await fake.close()
        await wait_idle(server)
    assert type(seen["error"]) is error
    assert seen["usable"] is False
    [entry] = events(logs, event)
    assert entry["channel_id"] == UNIQUEID
    await assert_serves(port)


async def test_hangup_line_mid_session(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        try:
            await session.stream_file("verbatim/consent-en", "1")
        except AgiHangup as exc:
            seen["hangup"] = exc
        seen["hungup"] = session.hungup
        # SET and GET VARIABLE are allowed on a dead channel (for the h extension), and the
        # stream is still in step: the answer after HANGUP was consumed.
        await session.set_variable("VERBATIM_STATUS", "HUNGUP")
        seen["after"] = await session.get_variable("VERBATIM_CALL_ID")

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect('STREAM FILE "verbatim/consent-en" "1"', "HANGUP", "200 result=-1 endpos=0")
    await fake.expect('SET VARIABLE VERBATIM_STATUS "HUNGUP"', "200 result=1")
    await fake.expect("GET VARIABLE VERBATIM_CALL_ID", "200 result=1 (c-1)")
    await fake.expect_closed()
    await fake.close()
    assert seen["hangup"].response.raw == "200 result=-1 endpos=0"
    assert seen["hungup"] is True
    assert seen["after"] == "c-1"
    await wait_idle(server)
    await assert_serves(port)


async def test_hangup_during_stream_file_is_a_hangup_not_a_failed_prompt(
    start_server: StartServer,
) -> None:
    """res_agi.c answers the STREAM FILE first (result=-1) and sends HANGUP only once run_agi
    reads the dead channel: the session asks once more, and learns of the hangup."""
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        try:
            await session.stream_file("verbatim/consent-en", "1")
        except AgiHangup as exc:
            seen["hangup"] = exc

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect('STREAM FILE "verbatim/consent-en" "1"', "200 result=-1 endpos=9600")
    await fake.send("HANGUP")
    await fake.expect("CHANNEL STATUS",
                      "511 Command Not Permitted on a dead channel or intercept routine")
    await fake.expect_closed()
    await fake.close()
    assert seen["hangup"].response.raw == "200 result=-1 endpos=9600"
    await wait_idle(server)


async def test_hangup_line_between_commands_and_511(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        try:
            await session.verbose("before")
        except AgiHangup as exc:
            seen["first"] = exc
        await session.command("ANSWER")  # not allowed on a dead channel: 511 -> AgiHangup

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env()
        await fake.send("HANGUP")  # the channel went away before the first command
        await fake.expect('VERBOSE "before" 1', "200 result=1")
        await fake.expect("ANSWER", DEAD)
        await fake.expect_closed()  # no VERBATIM_STATUS: a hangup is not a failed hook
        await wait_idle(server)
    await fake.close()
    assert seen["first"].response == AgiResponse(200, "1", None, None, "200 result=1")
    [hangup] = events(logs, "agi.hangup")
    assert hangup["detail"] == "ANSWER: channel is dead"
    assert not events(logs, "agi.hook_failed")
    await assert_serves(port)


async def test_510_and_multiline_520(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        seen["510"] = await session.command("FOO BAR")
        seen["520"] = await session.command("STREAM FILE")
        with pytest.raises(AgiCommandError) as err:
            await session.set_variable("A", "b")
        seen["error"] = err.value
        seen["after"] = await session.get_variable("X")

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect("FOO BAR", "510 Invalid or unknown command")
    await fake.expect("STREAM FILE", *USAGE)
    await fake.expect(
        'SET VARIABLE A "b"', "520 Invalid command syntax.  Proper usage not available."
    )
    await fake.expect("GET VARIABLE X", "200 result=1 (in step)")
    await fake.expect_closed()
    await fake.close()
    assert (seen["510"].code, seen["510"].data) == (510, "Invalid or unknown command")
    assert seen["520"].code == 520
    assert seen["520"].data == " Usage: STREAM FILE <filename> <escape_digits> [sample offset]"
    assert seen["520"].raw == "\n".join(USAGE)
    assert seen["error"].response.code == 520
    assert str(seen["error"]).startswith("SET VARIABLE: 520 Invalid command syntax.")
    assert seen["after"] == "in step"
    await wait_idle(server)


async def test_failing_hook_sets_error_status(start_server: StartServer) -> None:
    async def record(session: AgiSession) -> None:
        await session.set_variable("VERBATIM_STEP", "1")
        raise RuntimeError("boom")

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env()
        await fake.expect('SET VARIABLE VERBATIM_STEP "1"', "200 result=1")
        await fake.expect('SET VARIABLE VERBATIM_STATUS "ERROR"', "200 result=1")
        await fake.expect("SET VARIABLE VERBATIM_ERROR \"hook 'record' failed\"", "200 result=1")
        await fake.expect_closed()
        await wait_idle(server)
    await fake.close()
    [failed] = events(logs, "agi.hook_failed")
    assert failed["error"] == "RuntimeError: boom"
    assert failed["exc_info"] is True
    assert failed["log_level"] == "error"
    assert (failed["channel_id"], failed["script"]) == (UNIQUEID, "record")
    await assert_serves(port)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((), "no response to GET VARIABLE within 0.2 s"),
        (("hello",), "not an AGI response: 'hello'"),
        (("200 result=1 (" + "v" * 5000 + ")",), "line longer than 4096 bytes"),
    ],
)
async def test_bad_responses_end_the_session(
    start_server: StartServer, reply: tuple[str, ...], error: str
) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        try:
            await session.get_variable("VERBATIM_TARGET")
        except AgiProtocolError as exc:
            seen["error"] = str(exc)
        with pytest.raises(AgiProtocolError, match="session unusable"):
            await session.verbose("never sent")
        raise RuntimeError("gave up")

    server, port = await start_server({"record": record}, command_timeout_s=0.2)
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env()
        await fake.expect("GET VARIABLE VERBATIM_TARGET", *reply)
        await fake.expect_closed()  # out of step: no VERBATIM_STATUS, only the close
        await wait_idle(server)
    await fake.close()
    assert seen["error"].startswith(error)
    assert events(logs, "agi.hook_failed")
    await assert_serves(port)


async def test_stream_file_waits_longer_than_other_commands(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        seen["digit"] = await session.stream_file("verbatim/consent-en", "*#")

    server, port = await start_server(
        {"record": record}, command_timeout_s=0.05, stream_timeout_s=2.0
    )
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect('STREAM FILE "verbatim/consent-en" "*#"')
    await asyncio.sleep(0.2)  # the announcement plays
    await fake.send("200 result=35 endpos=12000")
    await fake.expect_closed()
    await fake.close()
    assert seen["digit"] == "#"
    await wait_idle(server)


async def test_stream_file_failure_is_a_command_error(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def record(session: AgiSession) -> None:
        try:
            await session.stream_file("verbatim/missing")
        except AgiCommandError as exc:
            seen["error"] = exc
        await session.set_variable("VERBATIM_STATUS", "NOPROMPT")

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect('STREAM FILE "verbatim/missing" ""', "200 result=-1 endpos=0")
    await fake.expect("CHANNEL STATUS", "200 result=6")  # the channel lives: the file is missing
    await fake.expect('SET VARIABLE VERBATIM_STATUS "NOPROMPT"', "200 result=1")
    await fake.expect_closed()
    await fake.close()
    assert seen["error"].response.result == "-1"
    await wait_idle(server)


async def test_injection_is_refused_before_anything_is_sent(start_server: StartServer) -> None:
    refused: list[str] = []

    async def record(session: AgiSession) -> None:
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: session.set_variable("X", 'ok"\nEXEC System "rm -rf /'),
            lambda: session.set_variable("BAD NAME", "x"),
            lambda: session.set_variable("CDR(userfield)", "x"),
            lambda: session.get_variable("X\nHANGUP"),
            lambda: session.stream_file("verbatim/consent", "1\n"),
            lambda: session.command("NOOP\nHANGUP"),
            lambda: session.verbose("two\nlines"),
        ]
        for attempt in attempts:
            with pytest.raises(ValueError) as err:
                await attempt()
            refused.append(str(err.value))
        await session.set_variable("X", "fine")

    server, port = await start_server({"record": record})
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect('SET VARIABLE X "fine"', "200 result=1")  # the first line sent
    await fake.expect_closed()
    await fake.close()
    assert len(refused) == 7
    await wait_idle(server)


async def test_max_sessions_answers_busy(start_server: StartServer) -> None:
    async def hold(session: AgiSession) -> None:
        await session.get_variable("WAIT")

    server, port = await start_server({"record": hold}, max_sessions=1)
    first = await FakeAsterisk.connect(port)
    await first.send_env()
    await first.expect("GET VARIABLE WAIT")  # the first call's hook is running
    assert server.sessions == 1

    second = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await second.send_env(uniqueid="1700000000.13")
        await second.expect('SET VARIABLE VERBATIM_STATUS "ERROR"', "200 result=1")
        await second.expect('SET VARIABLE VERBATIM_ERROR "busy"', "200 result=1")
        await second.expect_closed()
    await second.close()
    [busy] = events(logs, "agi.busy")
    assert (busy["channel_id"], busy["max_sessions"]) == ("1700000000.13", 1)

    await first.send("200 result=0")
    await first.expect_closed()
    await first.close()
    await wait_idle(server)
    await assert_serves(port)  # the slot is free again


async def test_a_flood_past_the_busy_ones_is_closed_unread(start_server: StartServer) -> None:
    async def hold(session: AgiSession) -> None:
        await session.get_variable("WAIT")

    server, port = await start_server({"record": hold}, max_sessions=1)
    first = await FakeAsterisk.connect(port)
    await first.send_env()
    await first.expect("GET VARIABLE WAIT")
    slow = await FakeAsterisk.connect(port)  # over the limit, its headers not yet sent: busy
    with capture_logs() as logs:
        flood = [await FakeAsterisk.connect(port) for _ in range(5)]
        for fake in flood:  # closed without a command: nothing was read
            await fake.expect_closed()
            await fake.close()
    [said] = events(logs, "agi.overloaded")  # at once, then not once a connection
    assert (said["log_level"], said["closed_unread"], said["max_sessions"]) == ("warning", 1, 1)
    assert not events(logs, "agi.busy") and not events(logs, "agi.bad_request")

    await slow.send_env(uniqueid="1700000000.14")  # the one being refused is still told why
    await slow.expect('SET VARIABLE VERBATIM_STATUS "ERROR"', "200 result=1")
    await slow.expect('SET VARIABLE VERBATIM_ERROR "busy"', "200 result=1")
    await slow.expect_closed()
    await slow.close()
    await first.send("200 result=0")
    await first.expect_closed()
    await first.close()
    await wait_idle(server)
    await assert_serves(port)
    with capture_logs() as logs:
        await server.stop()  # the rest of the burst, said by then at the latest
    [rest] = events(logs, "agi.overloaded")
    assert rest["closed_unread"] == 4


async def test_stop_cancels_sessions_and_stops_listening(start_server: StartServer) -> None:
    async def hold(session: AgiSession) -> None:
        await session.get_variable("WAIT")

    server, port = await start_server({"record": hold})
    fake = await FakeAsterisk.connect(port)
    await fake.send_env()
    await fake.expect("GET VARIABLE WAIT")
    await server.stop()
    assert server.sessions == 0
    await fake.expect_closed()
    await fake.close()
    with pytest.raises(OSError):
        await FakeAsterisk.connect(port)
    await server.stop()  # twice is harmless


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        AgiLimits(max_sessions=0)
    with pytest.raises(ValueError, match="header_timeout_s"):
        AgiLimits(header_timeout_s=-1)
