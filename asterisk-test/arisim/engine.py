"""The whole simulated Asterisk, without the HTTP side, plus the control actions tests use.

Every control action runs inside `action()`, like a REST call or a timer, so recordings stay
sample-accurate around it.
"""

from __future__ import annotations

from typing import Any

from .dialplan import EndpointBehaviour, Result
from .model import CAUSE_NORMAL, Channel, LiveRecording
from .playbacks import PlaybackOps


class ControlError(LookupError):
    """A control action named something that does not exist."""


class Engine(PlaybackOps):
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
    ) -> EndpointBehaviour:
        """How `endpoint` ("PJSIP/201", "Local/200@targets") behaves when dialled.

        result: answer | busy | noanswer | unavailable | congestion | manual (rings until the
        test calls answer/busy/reject). Replaces the dialplan for a Local endpoint.
        """
        b = EndpointBehaviour(result=result, answer_after=answer_after, ringing=ringing,
                              tone_hz=tone_hz, sends_media=sends_media, talking=talking,
                              hangup_after=hangup_after, busy_hangup_after=busy_hangup_after)
        self.dialplan.endpoints[endpoint] = b
        return b

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
        """An inbound call entering Stasis(app, args) in state Ring; see ChannelOps.start_call."""
        with self.action():
            return super().start_call(endpoint, caller_number, caller_name, args, app, tone_hz,
                                      sends_media, exten, channel_id)

    def answer(self, channel_id: str) -> None:
        """The party behind a dialled channel answers (or an inbound channel goes Up)."""
        with self.action():
            ch = self._chan(channel_id)
            if ch.dialing or ch.originating:
                self.far_answered(ch)
            else:
                self.answer_channel(ch)

    def busy(self, channel_id: str) -> None:
        with self.action():
            ch = self._chan(channel_id)
            self.far_busy(ch)
            if ch.tech != "PJSIP":
                self.hangup_channel(ch, 17)

    def reject(self, channel_id: str) -> None:
        with self.action():
            self.far_reject(self._chan(channel_id))

    def hangup(self, channel_id: str, cause: int = CAUSE_NORMAL) -> None:
        """The party hangs up: ChannelHangupRequest, ChannelLeftBridge, StasisEnd (and
        ChannelDestroyed where the app holds a subscription)."""
        with self.action():
            self.far_hangup(self._chan(channel_id), cause)

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

    def send_dtmf(self, channel_id: str, digit: str, duration_ms: int = 100) -> None:
        """The party presses a key: ChannelDtmfReceived (RFC 4733 from a phone)."""
        with self.action():
            ch = self._chan(channel_id)
            self.emit_channel("ChannelDtmfReceived", ch, digit=digit, duration_ms=duration_ms)
            # terminateOn: the recorder hears the digit (main/app.c acceptdtmf)
            for rec in list(self.recordings.values()):
                heard = (rec.kind == "channel" and rec.target_id == ch.id) or (
                    rec.kind == "bridge" and rec.target_id == ch.bridge_id)
                if heard and rec.state == "recording" and (
                        rec.terminate_on == "any" or rec.terminate_on == digit):
                    self.end_recording(rec)

    # ----------------------------------------------------------- recordings
    def _rec(self, name: str) -> LiveRecording:
        rec = self.recordings.get(name)
        if rec is None:
            raise ControlError(f"no live recording {name}")
        return rec

    def finish_recording(self, name: str) -> None:
        """End a live recording now, as if Asterisk stopped it (RecordingFinished)."""
        with self.action():
            self.end_recording(self._rec(name))

    def fail_recording(self, name: str, cause: str = "Recording failed") -> None:
        """Fail a live recording now (RecordingFailed with `cause`)."""
        with self.action():
            self.end_recording(self._rec(name), "failed", cause)

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
        self.channels[ch.id] = ch
        args = app_args.split(",") if app_args else []

        def enter() -> None:
            if not self.enter_stasis(ch, app, args):
                self.hangup_channel(ch, CAUSE_NORMAL, quiet=True)

        self.defer(enter)
        return ch

    def read_variable(self, ch: Channel, name: str) -> str | None:
        """A channel variable, or one of the few dialplan functions the simulator knows."""
        functions = {
            "CALLERID(num)": ch.caller.number,
            "CALLERID(name)": ch.caller.name,
            "CONNECTEDLINE(num)": ch.connected.number,
            "CONNECTEDLINE(name)": ch.connected.name,
            "CHANNEL(name)": ch.name,
            "CHANNEL(uniqueid)": ch.id,
            "CHANNEL(state)": ch.state,
        }
        if name in functions:
            return functions[name]
        if name == "UNIQUEID":
            return ch.id
        return ch.variables.get(name)
