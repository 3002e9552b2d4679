"""The FastAGI hooks, joined to the call model: one AGI session in, events out, replies back.

Each session (a dialplan's `AGI(agi://127.0.0.1:4573/<hook>,args…)`) becomes a HookCalled
event on the daemon's queue. The model answers with HookReply commands: variables to set,
announcements to play (STREAM FILE, the opt-out key as escape digit, reported back as a
HookPrompted event), and whether the session is over. A session the model does not finish in
`reply_timeout_s` answers VERBATIM_STATUS=FAILED, so the dialplan goes on to its fallback
(MixMonitor) instead of holding the caller: a slow recorder never stops a call.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from recorder.agi import AgiCommandError, AgiError, AgiHangup, AgiSession
from recorder.agi.protocol import one_line
from recorder.ari.events import ChannelInfo, Event
from recorder.model.commands import HookReply
from recorder.model.hooks import HOOKS
from recorder.model.inputs import HookCalled, HookPrompted

log = structlog.get_logger("verbatim.hooks")


class HookBroker:
    def __init__(
        self,
        put: Callable[[Event], Awaitable[None]],
        now: Callable[[], datetime],
        asterisk_id: Callable[[], str],
        reply_timeout_s: float = 10.0,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._put = put
        self._now = now
        self._asterisk_id = asterisk_id
        self._timeout = reply_timeout_s
        self._ready = ready
        self._waiting: dict[str, asyncio.Queue[HookReply]] = {}
        # Session ids are stored in calls' states: unique across restarts, so a reply meant
        # for a session of the previous run can never reach one of this run.
        self._prefix = f"agi-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self.timeouts = 0  # hooks answered FAILED for want of the recorder's reply (metrics)

    @property
    def waiting(self) -> int:
        """Hook sessions waiting for the recorder's reply now."""
        return len(self._waiting)

    @property
    def handlers(self) -> dict[str, Callable[[AgiSession], Awaitable[None]]]:
        """One handler for every hook name the model knows (the AGI server refuses others)."""
        return dict.fromkeys(HOOKS, self.handle)

    def deliver(self, reply: HookReply) -> None:
        """A HookReply from the model: to its session, if that still waits."""
        queue = self._waiting.get(reply.session)
        if queue is None:
            log.warning("hook.reply_late", session=reply.session, call_id=reply.call_id or None)
            return
        queue.put_nowait(reply)

    async def handle(self, session: AgiSession) -> None:
        req = session.request
        if not self._ready():
            # Not yet connected to Asterisk (our server id unknown): a call taken now could not
            # be adopted after a crash. The dialplan's fallback records it instead.
            log.warning("hook.not_ready", hook=req.script, channel_id=req.uniqueid)
            await session.set_variable("VERBATIM_STATUS", "FAILED")
            await session.set_variable("VERBATIM_ERROR", "the recorder is starting")
            return
        sid = f"{self._prefix}-{next(self._ids)}"
        queue: asyncio.Queue[HookReply] = asyncio.Queue()
        self._waiting[sid] = queue
        channel = ChannelInfo(
            id=req.uniqueid, name=req.channel, state="",
            caller_name=_known(req.calleridname), caller_number=_known(req.callerid),
        )
        log.info("hook.called", hook=req.script, channel_id=req.uniqueid, session=sid)
        try:
            await self._put(HookCalled(
                timestamp=self._now(), asterisk_id=self._asterisk_id(), session=sid,
                hook=req.script, channel=channel, args=req.args, exten=req.extension or "",
                dnid=req.dnid if req.dnid != "unknown" else "",
            ))
            while True:
                try:
                    reply = await asyncio.wait_for(queue.get(), self._timeout)
                except TimeoutError:
                    self.timeouts += 1
                    log.error("hook.timeout", hook=req.script, channel_id=req.uniqueid,
                              session=sid, waited_s=self._timeout)
                    await session.set_variable("VERBATIM_STATUS", "FAILED")
                    await session.set_variable("VERBATIM_ERROR", "the recorder did not answer")
                    return
                for name, value in reply.variables:
                    # a detail's wording (a policy name in a decision's reason) must never
                    # cost the reply: a control character in one made NOT_RECORDED an ERROR,
                    # and the dialplan's fallback recorded what policy said not to
                    await session.set_variable(name, one_line(value))
                if reply.prompts:
                    await self._play(session, sid, reply)
                if reply.final:
                    status = dict(reply.variables).get("VERBATIM_STATUS")
                    log.info("hook.answered", hook=req.script, channel_id=req.uniqueid,
                             call_id=reply.call_id or None, status=status)
                    return
        finally:
            del self._waiting[sid]

    async def _play(self, session: AgiSession, sid: str, reply: HookReply) -> None:
        digit: str | None = None
        hung_up = False
        error = None
        broken: AgiError | ValueError | None = None
        media = ""
        try:
            # STREAM FILE does not answer, and a SIP caller hears nothing before an answer
            # (or progress): answered as Playback() and Stasis mode would.
            await session.command("ANSWER")
            for media, escape in reply.prompts:
                digit = await session.stream_file(media, escape)
                if digit:
                    break
        except AgiHangup:
            hung_up = True
        except AgiCommandError as exc:  # e.g. the sound file is missing: result=-1
            error = str(exc)
            # info: the model says it once, as an error (consent.failed, with this error)
            log.info("hook.prompt_failed", channel_id=session.request.uniqueid, media=media,
                     error=error)
        except (AgiError, ValueError) as exc:  # an answer that is not AGI, or none in time
            broken, error = exc, str(exc)
        # Whatever became of the announcement, the model hears that it is over: else its
        # session waits for good, and the consent row says what a hang-up would.
        await self._put(HookPrompted(
            timestamp=self._now(), asterisk_id=self._asterisk_id(), session=sid,
            channel_id=session.request.uniqueid, digit=digit or None, hung_up=hung_up,
            error=error,
        ))
        if hung_up:
            raise AgiHangup("the channel hung up during the announcement")
        if broken is not None:
            raise broken  # the session cannot go on: the server answers for it


def _known(value: str | None) -> str:
    """res_agi.c writes "unknown" for an absent caller id."""
    return "" if value in (None, "unknown") else str(value)
