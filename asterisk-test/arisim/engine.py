"""The whole simulated Asterisk, without the HTTP side, plus the control actions tests use:
parties (start_call, start_dialplan_call, answer, busy, reject, forward, hangup, set_media,
send_dtmf, hold, unhold), transfers (blind_transfer, attended_transfer, abandon_transfer),
endpoints and dialplan (set_endpoint, add_extension, set_applicationmap), recordings
(finish_recording, fail_recording), FastAGI sessions (agi_sessions, wait_agi: see agi.py).

Every control action runs inside `action()`, like a REST call or a timer, so recordings stay
sample-accurate around it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from .attended import ATTENDED_BYE_DELAY, ATTENDED_SETUP_DELAY, AttendedResult
from .core import Core
from .dialplan import EndpointBehaviour, Priority, Result
from .model import CAUSE_NORMAL, AgiSession, CallerId, Channel, LiveRecording
from .transfers import REFER_BYE_DELAY, TransferOutcome, Via


class ControlError(LookupError):
    """A control action named something that does not exist (or cannot be done)."""


class Engine(Core):
    # ------------------------------------------------------------ endpoints
    def set_endpoint(
        self,
        endpoint: str,
        result: Result = "answer",
        answer_after: float = 1.0,
        tone_hz: int | None = None,
        sends_media: bool = True,
        *,
        ringing: bool = True,
        talking: bool = True,
        hangup_after: float | None = None,
        busy_hangup_after: float = 0.0,
        forward_to: str | None = None,
        state_before_dial: bool = False,
    ) -> EndpointBehaviour:
        """How `endpoint` ("PJSIP/201", "Local/200@targets") behaves when dialled.

        result: answer | busy | noanswer | unavailable | congestion | manual (rings until the
        test calls answer/busy/reject) | forward (answers 302 to `forward_to` after
        `answer_after` s, e.g. result="forward", forward_to="300"; see forwards.py) |
        nonexistent (not configured: ast_request fails). Replaces the dialplan for a Local
        endpoint.
        """
        if result == "forward" and not forward_to:
            raise ControlError("result='forward' needs forward_to")
        b = EndpointBehaviour(result=result, answer_after=answer_after, ringing=ringing,
                              tone_hz=tone_hz, sends_media=sends_media, talking=talking,
                              hangup_after=hangup_after, busy_hangup_after=busy_hangup_after,
                              forward_to=forward_to, state_before_dial=state_before_dial)
        self.dialplan.endpoints[endpoint] = b
        return b

    def add_extension(self, context: str, pattern: str, steps: list[Priority]) -> None:
        """Add an extension (first in order) to a dialplan context, e.g. the transfer context:
        add_extension("transfer-target", "_X.", [("Stasis", "verbatim,transfer,${EXTEN}")])."""
        self.dialplan.add_extension(context, pattern, [(str(a), str(d)) for a, d in steps])

    def load_dialplan(self, text: str, replace: dict[str, str] | None = None) -> list[str]:
        """Add the contexts of extensions.conf `text` — a shipped dialplan file, so tests run
        what is shipped —, each key of `replace` replaced by its value first (a FastAGI port);
        returns the contexts' names. Labels, Goto/GotoIf and $[...] work (dialing.py)."""
        return self.dialplan.load_conf(text, replace)

    # -------------------------------------------------------------- parties
    def _chan(self, channel_id: str) -> Channel:
        ch = self.channels.get(channel_id)
        if ch is None or ch.destroyed:
            raise ControlError(f"no channel {channel_id}")
        return ch

    def start_call(self, endpoint: str = "PJSIP/trunk", caller_number: str = "+14155550100",
                   caller_name: str = "Client", args: list[str] | None = None,
                   app: str = "verbatim", tone_hz: int | None = None, sends_media: bool = True,
                   exten: str | None = None, channel_id: str | None = None) -> Channel:
        """An inbound call entering Stasis(app, args) in state Ring; see ChannelLife.start_call."""
        with self.action():
            return self.life.start_call(endpoint, caller_number, caller_name, args, app, tone_hz,
                                      sends_media, exten, channel_id)

    def start_dialplan_call(self, exten: str, context: str = "from-trunk",
                            endpoint: str = "PJSIP/trunk",
                            caller_number: str = "+14155550100", caller_name: str = "Client",
                            tone_hz: int | None = None, sends_media: bool = True,
                            channel_id: str | None = None, dnid: str | None = None) -> Channel:
        """An inbound call the dialplan keeps (hook mode): a channel from `endpoint` in state
        Ring that runs exten@context from priority 1 — e.g. a context a test added with
        add_extension("hook-in", "_X.", [("AGI", "agi://127.0.0.1:PORT/in"),
        ("Dial", "PJSIP/${EXTEN},30")]). It is never in Stasis: an app sees its events only
        with subscribeAll=true."""
        with self.action():
            tech, _, resource = endpoint.partition("/")
            ch = self.life.build_tech_channel(tech or "PJSIP", resource or "trunk", channel_id,
                                         state="Ring")
            if ch.tech == "PJSIP":
                ch.protocol_id = f"{uuid.uuid4().hex[:12]}@127.0.0.1"
            ch.caller = CallerId(caller_name, caller_number)
            ch.dnid = exten if dnid is None else dnid  # a trunk context may map a DID to exten
            ch.dialplan.context, ch.dialplan.exten = context, exten
            ch.tone_hz = tone_hz if tone_hz is not None else self.fresh_tone()
            ch.sends_media = sends_media
            self.life.register(ch)
            self.pbx.run_dialplan(ch, context, exten, 1)
            return ch

    def answer(self, channel_id: str) -> None:
        """The party behind a dialled channel answers (or an inbound channel goes Up)."""
        with self.action():
            ch = self._chan(channel_id)
            if ch.dialing or ch.originating:
                self.dialling.far_answered(ch)
            else:
                self.life.answer_channel(ch)

    def busy(self, channel_id: str) -> None:
        with self.action():
            ch = self._chan(channel_id)
            self.dialling.far_busy(ch)
            if ch.tech != "PJSIP":
                self.life.hangup_channel(ch, 17)

    def forward(self, channel_id: str, forward_to: str) -> None:
        """The ringing party behind a dialled channel answers 302 to `forward_to` ("300" or
        "PJSIP/300"): followed for an originate, refused by /dial (see forwards.py)."""
        with self.action():
            ch = self._chan(channel_id)
            if not (ch.dialing or ch.originating):
                raise ControlError(f"channel {channel_id} is not being dialled")
            self.dialling.forwards.far_forward(ch, forward_to)

    def reject(self, channel_id: str) -> None:
        with self.action():
            self.dialling.far_reject(self._chan(channel_id))

    def hangup(self, channel_id: str, cause: int = CAUSE_NORMAL) -> None:
        """The party hangs up: ChannelHangupRequest, ChannelLeftBridge, StasisEnd (and
        ChannelDestroyed where the app holds a subscription)."""
        with self.action():
            self.life.far_hangup(self._chan(channel_id), cause)

    def continue_in_dialplan(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        """The channel leaves its bridge and the app (StasisEnd), then runs exten@context from
        `priority` (res/stasis/control.c stasis_app_control_continue)."""
        bridge = self.find_bridge(ch.bridge_id or "")
        if bridge is not None:
            self.bridging.bridge_remove(bridge, ch)
        self.life.leave_stasis(ch)
        self.defer(lambda: self.pbx.run_dialplan(ch, context, exten, priority))

    def set_media(self, channel_id: str, *, talking: bool | None = None,
                  sends_media: bool | None = None, tone_hz: int | None = None) -> None:
        """Turn a party's tone on/off, its RTP flow on/off, or change its frequency."""
        with self.action():
            ch = self._chan(channel_id)
            if talking is not None:
                ch.talking = talking
            if sends_media is not None:
                ch.sends_media = sends_media
            if tone_hz is not None:
                ch.tone_hz = tone_hz

    # ------------------------------------------------------ hold, transfers
    def hold(self, channel_id: str, musicclass: str | None = None) -> None:
        """The party puts the call on hold (re-INVITE sendonly): ChannelHold; it sends no
        audio until `unhold` (see transfers.py)."""
        with self.action():
            self.transfers.party_hold(self._chan(channel_id), musicclass)

    def unhold(self, channel_id: str) -> None:
        """The party resumes the call: ChannelUnhold."""
        with self.action():
            self.transfers.party_unhold(self._chan(channel_id))

    def blind_transfer(self, channel_id: str, exten: str, context: str = "transfer-target",
                       via: Via = "refer",
                       hangup_after: float | None = REFER_BYE_DELAY) -> TransferOutcome:
        """The party on `channel_id` blind-transfers its bridge to exten@context: SIP REFER
        (its phone then hangs up after `hangup_after` s; None: it stays) or AMI BlindTransfer
        (`via="ami"`: the channel stays). Returns the result and the Local pair's ids. In a
        basic (Dial) bridge the transferee itself runs exten@context and the transferer is hung
        up by Asterisk (no Local pair; see transfers.py)."""
        if via not in ("refer", "ami"):
            raise ControlError(f"via must be 'refer' or 'ami', not {via!r}")
        with self.action():
            return self.transfers.blind_transfer_channel(self._chan(channel_id), exten, context,
                                                         via, hangup_after)

    def attended_transfer(self, first_leg: str, second_leg: str, *,
                          result: AttendedResult = "success",
                          delay: float = ATTENDED_SETUP_DELAY,
                          hangup_after: float | None = ATTENDED_BYE_DELAY) -> TransferOutcome:
        """The phone holding `first_leg` (bridged with the transferee) and `second_leg` (the
        consultation call, bridged or only in the app) sends REFER with Replaces: link or
        application transfer, or `result="fail"` (see attended.py)."""
        if result not in ("success", "fail"):
            raise ControlError(f"result must be 'success' or 'fail', not {result!r}")
        with self.action():
            return self.attended.attended_transfer_channels(
                self._chan(first_leg), self._chan(second_leg), result=result, delay=delay,
                hangup_after=hangup_after)

    def abandon_transfer(self, first_leg: str, second_leg: str) -> None:
        """The staff member gives up the consultation and returns to the caller: the phone
        hangs up the consultation leg (BYE) and, if it held the first leg, resumes it. Asterisk
        sees no transfer at all (no REFER): no BridgeAttendedTransfer."""
        with self.action():
            first, second = self._chan(first_leg), self._chan(second_leg)
            self.life.hangup_channel(second, CAUSE_NORMAL)
            if first.on_hold:
                self.transfers.party_unhold(first)

    def send_dtmf(self, channel_id: str, digit: str, duration_ms: int = 100) -> None:
        """The party presses a key: ChannelDtmfReceived (RFC 4733 from a phone). The channel
        reads it: an AGI STREAM FILE escape digit, or a DTMF feature code of a basic bridge
        (several digits: one send_dtmf each)."""
        with self.action():
            ch = self._chan(channel_id)
            self.emit_channel("ChannelDtmfReceived", ch, digit=digit, duration_ms=duration_ms)
            if not self.agi.agi_dtmf(ch, digit):
                self.dial_app.feature_dtmf(ch, digit)
            # terminateOn: the recorder hears the digit (main/app.c acceptdtmf)
            for rec in list(self.recordings.values()):
                heard = (rec.kind == "channel" and rec.target_id == ch.id) or (
                    rec.kind == "bridge" and rec.target_id == ch.bridge_id)
                if heard and rec.state == "recording" and (
                        rec.terminate_on == "any" or rec.terminate_on == digit):
                    self.recorder.end_recording(rec)

    # ----------------------------------------------------------- recordings
    def _rec(self, name: str) -> LiveRecording:
        rec = self.recordings.get(name)
        if rec is None:
            raise ControlError(f"no live recording {name}")
        return rec

    def finish_recording(self, name: str) -> None:
        """End a live recording now, as if Asterisk stopped it (RecordingFinished)."""
        with self.action():
            self.recorder.end_recording(self._rec(name))

    def fail_recording(self, name: str, cause: str = "Recording failed") -> None:
        """Fail a live recording now (RecordingFailed with `cause`)."""
        with self.action():
            self.recorder.end_recording(self._rec(name), "failed", cause)

    # ------------------------------------------------------------------ AGI
    @property
    def agi_sessions(self) -> list[AgiSession]:
        """Every FastAGI session so far, in start order (agi.py)."""
        return self.agi.sessions

    async def wait_agi(
        self,
        match: str | Callable[[AgiSession], bool] | None = None,
        state: str = "done",
        timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline, as tests expect
    ) -> AgiSession:
        """See Agi.wait_agi."""
        return await self.agi.wait_agi(match, state, timeout)

    # ------------------------------------------------------------ features
    def set_applicationmap(self, items: dict[str, tuple[str, str, str]]) -> None:
        """See DialApp.set_applicationmap."""
        self.dial_app.set_applicationmap(items)

    # -------------------------------------------------------------- reading
    def events(self, etype: str | None = None) -> list[dict[str, Any]]:
        """Events sent (delivered) so far, optionally of one type."""
        return [r.event for r in self.hub.log
                if r.delivered and (etype is None or r.event["type"] == etype)]

    @property
    def validation_errors(self) -> list[str]:
        """Events that did not match events.json, and simulator-side errors."""
        return list(self.hub.errors) + list(self.errors)

    # ---------------------------------------------------------------- snoop
    def new_snoop(self, target: Channel, spy: str, whisper: str, app: str,
                  app_args: str | None, snoop_id: str | None) -> Channel:
        """A Snoop channel on `target` that enters Stasis(app) after the reply
        (res/res_stasis_snoop.c; trace record_channel_in_bridge)."""
        ch = Channel(id=snoop_id or self.new_uniqueid(),
                     name=f"Snoop/{target.id}-{self.next_tech('Snoop')}", tech="Snoop",
                     resource=target.id, creationtime=self.clock.epoch(), state="Up",
                     snoop_of=target.id, spy=spy, sends_media=True)
        # ast_channel_alloc publishes it (ChannelCreated, seen with subscribeAll)
        self.life.register(ch)
        args = app_args.split(",") if app_args else []

        def enter() -> None:
            if not self.life.enter_stasis(ch, app, args):
                self.life.hangup_channel(ch, CAUSE_NORMAL, quiet=True)

        self.defer(enter)
        return ch
