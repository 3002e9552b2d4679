"""FastAGI: the client side of res/res_agi.c, for channels the dialplan keeps (hook mode).

`AGI(agi://host[:port]/script,arg1,...)` (agi_exec_full → launch_netscript → run_agi) connects
over real TCP (port 4573 by default; MAX_AGI_CONNECT 2 s), sends `agi_network: yes`,
`agi_network_script: <script>` and the environment of setup_env (agi_request … agi_threadid,
agi_arg_N), then a blank line, and runs the commands the server sends, one reply line each,
until the server closes the connection. The channel's dialplan waits meanwhile; afterwards
AGISTATUS is SUCCESS, FAILURE (could not connect, the server said "failure", a command failed on
a live channel), NOTFOUND (not an agi:// URL: no local scripts here) or HANGUP — then the
dialplan stops (agi_exec returns -1).

Commands (parse_args: blanks separate, double quotes group, backslash escapes):
ANSWER, CHANNEL STATUS, GET VARIABLE (channel variables and the functions Pbx.read_variable
knows), GET FULL VARIABLE, SET VARIABLE, STREAM FILE <file> <escape digits> [offset] (plays for the
sound's length on the virtual clock: `200 result=0 endpos=<samples>`, or `result=<ASCII of the
digit>` when an escape digit arrives — Engine.send_dtmf —, PLAYBACKSTATUS set), VERBOSE, NOOP,
HANGUP [channel], EXEC <app> [args] (Playback, Wait, Answer, NoOp, Set, Verbose, Log, Hangup;
another application: `200 result=-2`). Anything else: `510 Invalid or unknown command`; wrong
arguments: `520 Invalid command syntax.  Proper usage not available.`

When the channel hangs up, the server gets `HANGUP` (AGISIGHUP, after the reply of a command in
progress: a STREAM FILE answers `200 result=-1 endpos=N` first); from then on only the commands
res_agi.c marks dead-safe run (GET/SET VARIABLE, GET FULL VARIABLE, EXEC, NOOP, VERBOSE), the others
answer `511 Command Not Permitted on a dead channel or intercept routine`. The channel is
destroyed only when the session ends (ast_hangup runs after the application returns). At the end
`HANGUP` is sent once more (run_agi notifies a FastAGI server on exit) and the socket closed.

Virtual time stands still while a server thinks: `settle` waits for a session that is connecting
or whose server has not sent its next command yet (at most `agi_patience_s` real seconds after
the last reply). Tests await sessions with `wait_agi` and read them in `agi_sessions`.

The part (`Agi`) runs on the World and ChannelLife; the dialplan it continues or stops, its
variables and functions, and the sounds' lengths are the dialplan interpreter's (`Pbx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from .channels import ChannelLife
from .dialplan import split_app_args
from .model import (
    ASTERISK_VERSION,
    CAUSE_NORMAL,
    AgiSession,
    AgiWait,
    Channel,
)
from .world import World

AGI_PORT = 4573
MAX_AGI_CONNECT = 2.0  # seconds (MAX_AGI_CONNECT 2000 ms)
RATE = 8000  # samples per second of the simulated sound files (endpos)
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine\n"
UNKNOWN = "510 Invalid or unknown command\n"
USAGE = "520 Invalid command syntax.  Proper usage not available.\n"
# main/channelstate.h enum ast_channel_state (CHANNEL STATUS)
STATE_CODES = {"Down": 0, "Rsrved": 1, "OffHook": 2, "Dialing": 3, "Ring": 4, "Ringing": 5,
               "Up": 6, "Busy": 7, "Dialing Offhook": 8, "Pre-ring": 9}
# The commands simulated, and whether res_agi.c's table lets them run on a dead channel.
COMMANDS: dict[tuple[str, ...], bool] = {
    ("answer",): False,
    ("channel", "status"): False,
    ("exec",): True,
    ("get", "full", "variable"): True,
    ("get", "variable"): True,
    ("hangup",): False,
    ("noop",): True,
    ("set", "variable"): True,
    ("stream", "file"): False,
    ("verbose",): True,
}
_thread_ids = itertools.count(140_187_593_295_424, 8_392_704)


def parse_agi_args(line: str) -> list[str]:
    """res_agi.c parse_args: words split on blanks; "..." groups (an empty "" is a word);
    a backslash makes the next character literal."""
    argv: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    in_word = False
    for c in line:
        if c == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if c in " \t" and not quoted and not escaped:
            if in_word:
                argv.append("".join(cur))
                cur = []
                in_word = False
            continue
        if c == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        in_word = True
        cur.append(c)
    if in_word:
        argv.append("".join(cur))
    return argv


def parse_agi_url(url: str) -> tuple[str, int, str]:
    """agi://host[:port][/script] → (host, port, script)."""
    rest = url[len("agi://"):]
    hostport, _, script = rest.partition("/")
    parts = urlsplit(f"//{hostport}")
    return parts.hostname or "127.0.0.1", parts.port or AGI_PORT, script


class Pbx(Protocol):
    """The dialplan interpreter as an AGI session sees it."""

    def dp_continue(self, ch: Channel) -> None: ...

    def dp_abort(self, ch: Channel) -> None: ...

    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None: ...

    def read_variable(self, ch: Channel, name: str) -> str | None: ...

    def substitute(self, ch: Channel, data: str) -> str: ...

    def playback_length(self, data: str) -> float: ...

    def playback_status(self, data: str) -> str: ...


class Agi:
    """FastAGI sessions on one World; `patience_s`: see `settle` above."""

    def __init__(self, world: World, life: ChannelLife, pbx: Pbx, patience_s: float) -> None:
        self.world = world
        self.life = life
        self.pbx = pbx
        self.patience_s = patience_s
        self.sessions: list[AgiSession] = []
        self.stopped = False

    # ----------------------------------------------------------------- start
    def start_agi(self, ch: Channel, data: str) -> None:
        """AGI(...) in the dialplan of `ch`: the dialplan goes on when the session ends (not
        after a hangup). Inside a Dial U() routine the session's kind is "gosub"."""
        kind = "gosub" if ch.dp_saved is not None else "dialplan"
        self.run_agi(ch, data, kind, lambda s: self._agi_dialplan_done(ch, s))

    def _agi_dialplan_done(self, ch: Channel, s: AgiSession) -> None:
        if ch.hungup or ch.destroyed or s.status == "HANGUP":
            self.pbx.dp_abort(ch)
            return
        self.pbx.dp_continue(ch)

    def run_agi(self, ch: Channel, data: str, kind: str,
                on_done: Callable[[AgiSession], None]) -> AgiSession:
        """Start a FastAGI session on `ch` for the AGI() data `url,arg1,...`."""
        args = split_app_args(data)
        url = args[0].strip() if args else ""
        script = url[len("agi://"):].partition("/")[2] if url.startswith("agi://") else url
        s = AgiSession(id=len(self.sessions) + 1, channel_id=ch.id, channel_name=ch.name,
                       url=url, script=script, args=args[1:], kind=kind,
                       started_at=self.world.clock.now(), dead=ch.hungup)
        s.on_done = on_done
        self.sessions.append(s)
        ch.agi = s
        if not url.startswith("agi://"):
            # launch_script: a local script, which the simulator does not have
            self.world.warnings.append(f"AGI({data}) on {ch.name}: only agi:// is simulated")
            s.result = "NOTFOUND"
            self.world.schedule(0, lambda: self._agi_finish(s), f"AGI notfound {ch.name}")
            return s
        s.task = asyncio.get_running_loop().create_task(self._agi_main(s, ch))
        return s

    # ----------------------------------------------------------- the session
    async def _agi_main(self, s: AgiSession, ch: Channel) -> None:
        host, port, script = parse_agi_url(s.url)
        loop = asyncio.get_running_loop()
        try:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                        MAX_AGI_CONNECT)
            except (OSError, TimeoutError) as exc:
                s.error = f"{type(exc).__name__}: {exc}"
                self.world.warnings.append(f"FastAGI connection to '{s.url}' failed: {s.error}")
                s.result = "FAILURE"
                return
            s.writer = writer
            lines = ["agi_network: yes"]
            if script:
                lines.append(f"agi_network_script: {script}")
            lines += self.agi_env(s, ch)
            s.env = lines
            s.set_state("waiting")
            s.idle_since = loop.time()
            self._agi_send(s, "".join(f"{line}\n" for line in lines) + "\n")
            if s.dead:
                self._agi_send_hangup(s)
            while True:
                raw = await reader.readline()
                if not raw:
                    break  # "Program terminated"
                s.working = True
                self.world._bump()
                text = raw.decode("utf-8", "replace")
                if text.endswith("\n"):
                    text = text[:-1]
                s.commands.append(text)
                if text[:7].lower() == "failure":
                    s.result = "FAILURE"
                    break
                reply = await self._agi_command(s, ch, text)
                self._agi_send(s, reply)
                if s.dead and not s.hangup_sent:
                    self._agi_send_hangup(s)
                s.set_state("waiting")
                s.working = False
                s.idle_since = loop.time()
                self.world._bump()
        except (ConnectionError, OSError) as exc:
            s.error = f"{type(exc).__name__}: {exc}"
        finally:
            writer_ = s.writer
            if writer_ is not None:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    writer_.write(b"HANGUP\n")
                writer_.close()
                with contextlib.suppress(ConnectionError, OSError, RuntimeError,
                                         asyncio.CancelledError):
                    await writer_.wait_closed()
            if not self.stopped:
                self._agi_finish(s)

    def _agi_send(self, s: AgiSession, text: str) -> None:
        if s.writer is None or s.writer.is_closing():
            return
        if text and not text.startswith("agi_"):
            s.replies.extend(text.splitlines())
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            s.writer.write(text.encode())
        self.world._bump()

    def _agi_send_hangup(self, s: AgiSession) -> None:
        s.hangup_sent = True
        self._agi_send(s, "HANGUP\n")

    def _agi_finish(self, s: AgiSession) -> None:
        """agi_exec_full's end: AGISTATUS, then the application returns."""
        if s.state == "done":
            return
        if s.wait is not None and s.wait.timer is not None:
            s.wait.timer.cancel()
        s.wait = None
        s.working = False
        s.status = s.result
        s.set_state("done")
        s.ended_at = self.world.clock.now()
        ch = self.world.channels.get(s.channel_id)
        with self.world.action():
            if ch is None:
                return
            if ch.agi is s:
                ch.agi = None
            if not ch.destroyed:
                self.pbx.dp_set_variable(ch, "AGISTATUS", s.status)
            if s.on_done is not None:
                s.on_done(s)
            if ch.destroy_pending and not ch.destroyed and ch.agi is None:
                self.life.destroy_channel(ch)

    def agi_env(self, s: AgiSession, ch: Channel) -> list[str]:
        """res_agi.c setup_env, in its order."""
        loc = ch.dialplan
        lines = [
            f"agi_request: {s.url}",
            f"agi_channel: {ch.name}",
            f"agi_language: {ch.language}",
            f"agi_type: {ch.tech}",
            f"agi_uniqueid: {ch.id}",
            f"agi_version: {ASTERISK_VERSION}",
            f"agi_callerid: {ch.caller.number or 'unknown'}",
            f"agi_calleridname: {ch.caller.name or 'unknown'}",
            "agi_callingpres: 0",
            "agi_callingani2: 0",
            "agi_callington: 0",
            "agi_callingtns: 0",
            f"agi_dnid: {ch.dnid or 'unknown'}",
            f"agi_rdnis: {ch.caller_rdnis or 'unknown'}",
            f"agi_context: {loc.context}",
            f"agi_extension: {loc.exten}",
            f"agi_priority: {loc.priority}",
            "agi_enhanced: 0.0",
            f"agi_accountcode: {ch.accountcode}",
            f"agi_threadid: {next(_thread_ids)}",
        ]
        lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(s.args, 1)]
        return lines

    # -------------------------------------------------------------- commands
    async def _agi_command(self, s: AgiSession, ch: Channel, text: str) -> str:
        argv = parse_agi_args(text)
        words = tuple(a.lower() for a in argv)
        found = next((c for c in sorted(COMMANDS, key=len, reverse=True)
                      if words[:len(c)] == c), None)
        if found is None:
            if argv:
                self.world.warnings.append(f"AGI command not simulated: {text!r}")
            return UNKNOWN
        if s.dead and not COMMANDS[found]:
            return DEAD_CHANNEL
        name = " ".join(found)
        if name == "stream file":
            return await self._agi_stream_file(s, ch, argv)
        if name == "exec":
            return await self._agi_exec(s, ch, argv)
        with self.world.action():
            return self._agi_simple(s, ch, name, argv)

    def _agi_simple(self, s: AgiSession, ch: Channel, name: str, argv: list[str]) -> str:
        if name == "answer":
            if ch.state != "Up":
                self.life.answer_channel(ch)
            return "200 result=0\n"
        if name == "channel status":
            target = ch if len(argv) == 2 else self._by_name(argv[2]) if len(argv) == 3 else None
            if len(argv) > 3:
                return USAGE
            if target is None:
                return "200 result=-1\n"
            return f"200 result={STATE_CODES.get(target.state, 0)}\n"
        if name == "get variable":
            if len(argv) != 3:
                return USAGE
            value = self.pbx.read_variable(ch, argv[2])
            return "200 result=0\n" if value is None else f"200 result=1 ({value})\n"
        if name == "get full variable":
            if len(argv) not in (4, 5):
                return USAGE
            other = ch if len(argv) == 4 else self._by_name(argv[4])
            if other is None:
                return "200 result=0\n"
            return f"200 result=1 ({self.pbx.substitute(other, argv[3])})\n"
        if name == "set variable":
            if len(argv) != 4:
                return USAGE
            self.pbx.dp_set_variable(ch, argv[2], argv[3])
            return "200 result=1\n"
        if name == "verbose":
            return USAGE if len(argv) < 2 else "200 result=1\n"
        if name == "noop":
            return "200 result=0\n"
        # hangup [channel]: ast_softhangup(AST_SOFTHANGUP_EXPLICIT)
        if len(argv) > 2:
            return USAGE
        target = ch if len(argv) == 1 else self._by_name(argv[1])
        if target is None:
            return "200 result=-1\n"
        self.life.hangup_channel(target, target.hangup_cause or CAUSE_NORMAL, soft=True)
        return "200 result=1\n"

    def _by_name(self, name: str) -> Channel | None:
        return next((c for c in self.world.live_channels() if c.name == name or c.id == name), None)

    async def _agi_wait(self, s: AgiSession, seconds: float,
                        escape: str = "") -> tuple[str, int, float]:
        """Run on the virtual clock for `seconds`; an escape digit or a hangup ends it early.
        Returns (how it ended, result, seconds played)."""
        if s.dead:
            return "hangup", -1, 0.0
        loop = asyncio.get_running_loop()
        wait = AgiWait(future=loop.create_future(), started=self.world.clock.now(), escape=escape)
        s.wait = wait
        s.set_state("playing")
        s.working = False
        wait.timer = self.world.schedule(max(0.0, seconds), lambda: self._agi_resolve(s, "done", 0),
                                         f"AGI play {s.channel_name}")
        self.world._bump()
        how, result = await wait.future
        s.wait = None
        return how, result, wait.elapsed if how != "done" else seconds

    def _agi_resolve(self, s: AgiSession, how: str, result: int) -> None:
        wait = s.wait
        if wait is None or wait.future.done():
            return
        if wait.timer is not None:
            wait.timer.cancel()
        wait.elapsed = self.world.clock.now() - wait.started
        wait.future.set_result((how, result))
        s.working = True
        self.world._bump()

    async def _agi_stream_file(self, s: AgiSession, ch: Channel, argv: list[str]) -> str:
        if not 4 <= len(argv) <= 5:
            return USAGE
        offset = 0
        if len(argv) == 5:
            try:
                offset = int(argv[4])
            except ValueError:
                return USAGE
        seconds = self.world.dialplan.stream_seconds(argv[2])
        if seconds is None:
            # res_agi.c handle_streamfile: ast_openstream failed. No PLAYBACKSTATUS; the
            # session goes on, and AGISTATUS is FAILURE at its end (run_agi: a failure while
            # the channel is not hung up).
            s.result = "FAILURE"
            return f"200 result=-1 endpos={offset}\n"
        length = round(seconds * RATE)
        offset = max(0, min(offset, length))
        how, result, played = await self._agi_wait(s, (length - offset) / RATE, argv[3])
        endpos = length if how == "done" else min(length, offset + round(played * RATE))
        with self.world.action():
            if how == "hangup":
                s.result = s.result if ch.hungup else "FAILURE"
            elif not ch.destroyed:
                self.pbx.dp_set_variable(ch, "PLAYBACKSTATUS", "FAILED" if result else "SUCCESS")
        return f"200 result={result} endpos={endpos}\n"

    async def _agi_exec(self, s: AgiSession, ch: Channel, argv: list[str]) -> str:
        """EXEC: pbx_exec of a few applications. The snapshot shows the application while it
        runs; the location (context, exten, priority) does not change, so no ChannelDialplan."""
        if len(argv) < 2:
            return USAGE
        app, data = argv[1], argv[2] if len(argv) > 2 else ""
        lower = app.lower()
        saved = (ch.dialplan.app_name, ch.dialplan.app_data)
        ch.dialplan.app_name, ch.dialplan.app_data = app, data
        try:
            if lower in ("playback", "wait"):
                if lower == "playback":
                    options = data.split(",", 1)[1] if "," in data else ""
                    if not s.dead and ch.state != "Up" and "noanswer" not in options:
                        with self.world.action():
                            self.life.answer_channel(ch)
                    seconds = self.pbx.playback_length(data)
                else:
                    try:
                        seconds = float(data or 0)
                    except ValueError:
                        seconds = 0.0
                how, _, _ = await self._agi_wait(s, seconds)
                res = -1 if how == "hangup" else 0
                if lower == "playback" and res == 0:
                    with self.world.action():
                        status = self.pbx.playback_status(data)
                        self.pbx.dp_set_variable(ch, "PLAYBACKSTATUS", status)
                return f"200 result={res}\n"
            with self.world.action():
                res = self._agi_exec_now(s, ch, lower, data)
            return f"200 result={res}\n"
        finally:
            if not ch.destroyed:
                ch.dialplan.app_name, ch.dialplan.app_data = saved

    def _agi_exec_now(self, s: AgiSession, ch: Channel, app: str, data: str) -> int:
        if app == "answer":
            if s.dead:
                return -1
            self.life.answer_channel(ch)
            return 0
        if app in ("noop", "verbose", "log"):
            return 0
        if app == "set":
            name, _, value = data.partition("=")
            self.pbx.dp_set_variable(ch, name.strip(), value)
            return 0
        if app == "hangup":
            if not s.dead:
                self.life.hangup_channel(ch, ch.hangup_cause or CAUSE_NORMAL, soft=True)
            return -1
        self.world.warnings.append(f"AGI EXEC {app} not simulated on {ch.name}")
        return -2

    # ------------------------------------------------------------ the channel
    def hold_destroy(self, ch: Channel) -> bool:
        """The channel hung up: its AGI session learns it (HANGUP) and keeps it until it ends."""
        s = ch.agi
        if s is None or s.state == "done":
            return False
        if not s.dead:
            s.dead = True
            if s.result == "SUCCESS":
                s.result = "HANGUP"
            if s.wait is not None:
                self._agi_resolve(s, "hangup", -1)
            elif s.state == "waiting" and not s.working:
                self._agi_send_hangup(s)
        return True

    def agi_dtmf(self, ch: Channel, digit: str) -> bool:
        """A DTMF digit the channel sent: an escape digit ends the STREAM FILE playing."""
        s = ch.agi
        if s is None or s.wait is None or not s.wait.escape or digit not in s.wait.escape:
            return False
        self._agi_resolve(s, "dtmf", ord(digit[0]))
        return True

    def waiting_on_agi(self) -> bool:
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return False
        for s in self.sessions:
            if s.state == "done":
                continue
            if s.state == "connecting" or s.working:
                return True
            if s.state == "waiting" and now - s.idle_since < self.patience_s:
                return True
        return False

    # ----------------------------------------------------------------- tests
    async def wait_agi(
        self,
        match: str | Callable[[AgiSession], bool] | None = None,
        state: str = "done",
        timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline, as tests expect
    ) -> AgiSession:
        """Wait (real time) for the first AGI session matching `match` — a channel id or name,
        or a predicate on the AgiSession; None: any — that is or has been in `state`
        (connecting | waiting | playing | done)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def matches(s: AgiSession) -> bool:
            if match is None:
                return True
            if isinstance(match, str):
                return match in (s.channel_id, s.channel_name)
            return match(s)

        while True:
            for s in self.sessions:
                if matches(s) and (s.state == state or state in s.visited):
                    return s
            if loop.time() > deadline:
                raise TimeoutError(f"no AGI session {match!r} in state {state!r} "
                                   f"within {timeout}s")
            await asyncio.sleep(0.002)

    async def stop_agi(self) -> None:
        """Close every FastAGI connection (simulator shutdown)."""
        self.stopped = True
        tasks = [s.task for s in self.sessions if s.task is not None and not s.task.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
