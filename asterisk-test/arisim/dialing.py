"""Outgoing legs: /channels/create + /dial, originate, the far end's answer.

ARI dial (res/stasis/control.c app_control_dial) publishes Dial with the dial string and no
caller, then one Dial per control frame the callee sends (main/bridge_channel.c: RINGING, BUSY,
CONGESTION, ANSWER). A Local callee rings as ChannelStateChange then Dial; a PJSIP callee as Dial
(peer still "Down") then ChannelStateChange (traces caller_abandons, sip_basic). The /dial timeout
hangs up an unanswered channel with cause 19 (control.c bridge_timeout → hangup_channel).

Originate (resource_channels.c ari_channels_handle_originate_with_id) dials through main/dial.c:
when the callee answers, the channel goes to the app (StasisStart) or the given dialplan; on
timeout a Dial NOANSWER is published and the channel hung up. dial.c publishes its statuses with
the device as `dialstring` (handle_frame); a dialled channel the app hangs up is read as NULL by
monitor_dial, which publishes ast_hangup_cause_to_dial_status of its cause first.

Channels outside Stasis run the dialplan interpreter (pbx.py, the Pbx part).

Any channel in a bridge publishes a Dial for the control frames it reads (main/bridge_channel.c
bridge_handle_trip: RINGING, PROGRESS, PROCEEDING, ANSWER, BUSY, CONGESTION) — e.g. the Local ";1"
a transfer put in the call bridge goes Up with a Dial ANSWER when its ";2" is answered (traces
blind_transfer, sip_attended_transfer_refer).
"""

from __future__ import annotations

from typing import Protocol

from .channels import ChannelLife
from .dialplan import SILENT_CONTEXTS, EndpointBehaviour
from .forwards import Forwards
from .model import (
    CAUSE_BUSY,
    CAUSE_CONGESTION,
    CAUSE_NO_ANSWER,
    CAUSE_NORMAL,
    CAUSE_REJECTED,
    CAUSE_SUBSCRIBER_ABSENT,
    CallerId,
    Channel,
    DialplanLocation,
)
from .pbx import Pbx
from .world import World

_PJSIP_TECH_CAUSE = {CAUSE_BUSY: 486, CAUSE_SUBSCRIBER_ABSENT: 480, CAUSE_REJECTED: 603,
                     CAUSE_CONGESTION: 503}


class AppDial(Protocol):
    """Dial() in the dialplan (appdial.py) as the far end's signals reach it."""

    def app_dial_answered(self, ch: Channel) -> None: ...

    def app_dial_busy(self, ch: Channel, status: str) -> None: ...

    def app_dial_gone(self, ch: Channel) -> None: ...

    def app_dial_forward(self, ch: Channel, target: str) -> None: ...


class Dialling:
    """Outgoing legs on one World, and the parties behind them; a 302 is its `forwards`'.
    `create_stasis_delay`: virtual seconds between a /channels/create reply and StasisStart."""

    def __init__(self, world: World, life: ChannelLife, pbx: Pbx, app_dial: AppDial,
                 create_stasis_delay: float = 0.0) -> None:
        self.world = world
        self.life = life
        self.pbx = pbx
        self.app_dial = app_dial
        self.create_stasis_delay = create_stasis_delay
        self.forwards = Forwards(world, life, self, app_dial)

    # ---------------------------------------------------------------- parties
    def behaviour(self, ch: Channel) -> EndpointBehaviour | None:
        """The behaviour a test set for this endpoint, or the default one for phones."""
        b = self.world.dialplan.behaviour_for(ch.behaviour_key or f"{ch.tech}/{ch.resource}")
        if b is None and ch.tech != "Local":
            return self.world.dialplan.default_behaviour
        return b

    def setup_far_party(self, ch: Channel) -> None:
        """Tone and media flags of the party behind an outgoing channel."""
        ch.behaviour_key = f"{ch.tech}/{ch.resource}"
        b = self.behaviour(ch)
        if b is not None:
            ch.talking = b.talking
            ch.tone_hz = b.tone_hz if b.tone_hz is not None else self.world.fresh_tone()
            ch.sends_media = b.sends_media
            return
        other = self.world.peer(ch)
        loc = other.dialplan if other is not None else ch.dialplan
        silent = (loc.context, loc.exten) in SILENT_CONTEXTS
        ch.tone_hz = None if silent else self.world.fresh_tone()
        ch.sends_media = False

    # ------------------------------------------------------------- create
    def create_channel(
        self,
        endpoint: str,
        app: str,
        app_args: str | None,
        channel_id: str | None = None,
        other_id: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> Channel:
        """POST /channels/create: a channel that will enter Stasis(app) without being dialled."""
        tech, _, resource = endpoint.partition("/")
        if tech == "Local":
            ch, _ = self.life.new_local_pair(resource, channel_id, other_id)
        else:
            ch = self.life.new_tech_channel(tech, resource, channel_id)
        ch.explicit_apps.add(app)
        ch.ari_dialstring = resource
        ch.variables.update(variables or {})
        self.setup_far_party(ch)
        args = app_args.split(",") if app_args else []

        def enter() -> None:
            if not self.life.enter_stasis(ch, app, args):
                self.life.hangup_channel(ch, CAUSE_NORMAL, report_cause=False)

        if self.create_stasis_delay > 0:
            self.world.schedule(self.create_stasis_delay, enter, f"stasis-entry {ch.id}", owner=ch)
        else:
            self.world.defer(enter)
        return ch

    # ---------------------------------------------------------------- dial
    def ari_dial(self, ch: Channel, caller: Channel | None, timeout: int) -> None:
        """POST /channels/{id}/dial (after the 204: Dial events follow the reply)."""
        if caller is not None:
            ch.connected = CallerId(caller.caller.name, caller.caller.number)
        ch.dialing = True
        ch.dialed = True

        def start() -> None:
            if ch.hungup:
                return
            self.dial_event(ch, "", dialstring=ch.ari_dialstring or ch.resource)
            if timeout > 0:
                self.world.schedule(timeout, lambda: self._dial_timeout(ch),
                                    f"dial-timeout {ch.id}", owner=ch)
            self.start_far_end(ch)

        self.world.defer(start)

    def _dial_timeout(self, ch: Channel) -> None:
        if ch.state != "Up":
            self.life.hangup_channel(ch, CAUSE_NO_ANSWER, soft=True)

    def dial_event(self, ch: Channel, status: str, dialstring: str = "",
                   forward: str = "") -> None:
        run = ch.dialed_by
        if run is not None:
            # app_dial.c: ast_channel_publish_dial(in, c, ...) names the caller too; its ANSWER
            # comes only once the called channel is ready to be bridged (appdial.py).
            caller = self.world.channels.get(run.caller_id)
            if status == "RINGING" and caller is not None and "m" not in run.options:
                caller.waiting_hears = "ringing"  # passed on (played in-band once it is Up)
            if status != "ANSWER" and caller is not None:
                self.world.emit("Dial", {"caller": caller.json(), "peer": ch.json(),
                                         "dialstatus": status, "forward": forward,
                                         "dialstring": dialstring}, channels=[caller, ch])
            return
        if ch.originating and status and not dialstring:
            dialstring = ch.originate_device
        if ch.dialing or ch.originating or ch.bridge_id is not None:
            self.world.emit("Dial", {"dialstatus": status, "forward": forward,
                                     "dialstring": dialstring, "peer": ch.json()}, channels=[ch])

    def dial_hung_up(self, ch: Channel) -> None:
        """A channel that Dial() rings or runs goes away (appdial.py); and main/dial.c
        monitor_dial: a channel being dialled by originate that hangs up (the
        app's DELETE — e.g. the losers of a ring group — or the far end failing) is read as
        NULL, and a Dial with ast_hangup_cause_to_dial_status of its cause is published before it
        is destroyed (17 BUSY, 34 CONGESTION, 3/20 CHANUNAVAIL, else NOANSWER)."""
        if ch.dialed_by is not None or ch.dial_run is not None:
            self.app_dial.app_dial_gone(ch)
        if ch.originating:
            self.dial_event(ch, hangup_dial_status(ch.hangup_cause))
            ch.originating = False

    # ------------------------------------------------------------ far end
    def start_far_end(self, ch: Channel) -> None:
        b = self.behaviour(ch)
        if b is not None:
            self._run_behaviour(ch, b)
            return
        other = self.world.peer(ch)
        if other is not None:
            self._unreal_call_setup(ch, other)
            self.pbx.run_dialplan(other, other.dialplan.context, other.dialplan.exten, 1)

    def _unreal_call_setup(self, one: Channel, two: Channel) -> None:
        """main/core_unreal.c ast_unreal_call_setup: every variable of the ;1 (what Dial() set,
        and what it inherited: __VERBATIM_CALL_ID) is copied to the ;2, with a ChannelVarset
        each under its full name (observed/hook_mode_forward_302)."""
        for name, value in list(one.variables.items()):
            level = one.inherit.get(name, 0)
            self.pbx.dp_set_variable(two, "_" * level + name, value)

    def _run_behaviour(self, ch: Channel, b: EndpointBehaviour) -> None:
        if b.result == "unavailable":
            self.world.schedule(0, lambda: self.far_fail(ch, CAUSE_SUBSCRIBER_ABSENT),
                                f"unavailable {ch.id}", owner=ch)
            return
        if b.ringing:
            self.far_ringing(ch)
        if b.result in ("answer", "busy", "congestion", "forward"):
            self.world.schedule(b.answer_after, lambda: self._far_result(ch, b), f"far-end {ch.id}",
                                owner=ch)

    def _far_result(self, ch: Channel, b: EndpointBehaviour) -> None:
        if b.result == "answer":
            self.far_answered(ch)
            if b.hangup_after is not None:
                self.world.schedule(b.hangup_after, lambda: self.life.far_hangup(ch),
                                    f"far-bye {ch.id}", owner=ch)
        elif b.result == "busy":
            self.far_busy(ch, b.busy_hangup_after)
        elif b.result == "forward":
            self.forwards.far_forward(ch, b.forward_to or "")
        else:
            self.dial_event(ch, "CONGESTION")
            ch.originating = False  # dial.c handle_frame drops the owner after BUSY/CONGESTION
            if ch.dialed_by is not None:
                self.app_dial.app_dial_busy(ch, "CONGESTION")
                return
            self.far_fail(ch, CAUSE_CONGESTION)

    def far_fail(self, ch: Channel, cause: int) -> None:
        tech_cause = _PJSIP_TECH_CAUSE.get(cause) if ch.tech == "PJSIP" else None
        self.life.hangup_channel(ch, cause, tech_cause=tech_cause)

    def far_ringing(self, ch: Channel) -> None:
        if ch.state not in ("Down", "Rsrved"):
            return
        b = self.behaviour(ch)
        if ch.tech == "Local" or (b is not None and b.state_before_dial):
            self.life.set_state(ch, "Ringing")
            self.dial_event(ch, "RINGING")
        else:
            self.dial_event(ch, "RINGING")
            self.life.set_state(ch, "Ringing")

    def far_answered(self, ch: Channel) -> None:
        """The far end of `ch` answered: Up, Dial ANSWER, and an originate goes on."""
        if ch.destroyed or ch.hungup or ch.state == "Up":
            return
        self.life.set_state(ch, "Up")
        self.dial_event(ch, "ANSWER")
        ch.dialing = False
        if ch.dialed_by is not None:
            self.app_dial.app_dial_answered(ch)
        if ch.originating:
            self._originate_answered(ch)

    def far_busy(self, ch: Channel, hangup_after: float = 0.0) -> None:
        self.dial_event(ch, "BUSY")
        ch.dialing = False
        ch.originating = False
        if ch.dialed_by is not None:
            self.app_dial.app_dial_busy(ch, "BUSY")
            return
        if ch.tech == "PJSIP":
            self.world.schedule(hangup_after, lambda: self.far_fail(ch, CAUSE_BUSY),
                                f"busy-hangup {ch.id}", owner=ch)

    def far_reject(self, ch: Channel) -> None:
        self.far_fail(ch, CAUSE_REJECTED)

    # ----------------------------------------------------------- originate
    def originate(
        self,
        endpoint: str,
        *,
        app: str | None,
        app_args: str | None,
        context: str | None,
        extension: str | None,
        priority: int,
        caller_id: tuple[str, str] | None,
        timeout: int,
        channel_id: str | None,
        other_id: str | None,
        variables: dict[str, str],
    ) -> Channel:
        """POST /channels: dial `endpoint`; on answer, to Stasis(app) or context/extension."""
        tech, _, resource = endpoint.partition("/")
        if tech == "Local":
            ch, ch2 = self.life.new_local_pair(resource, channel_id, other_id)
            halves = [ch, ch2]
        else:
            ch = self.life.new_tech_channel(tech, resource, channel_id)
            halves = [ch]
        for h in halves:
            if caller_id is not None:
                h.caller = CallerId(*caller_id)
                h.connected = CallerId(*caller_id)
            h.variables.update(variables)
            if app:
                h.explicit_apps.add(app)  # both Local halves (resource_channels.c)
        ch.dialplan.app_name, ch.dialplan.app_data = "AppDial2", "(Outgoing Line)"
        self.setup_far_party(ch)
        if tech == "Local" and not app:
            ctx, ext = context or "default", extension or "s"
            ch2 = halves[1]
            ch2.tone_hz = None if (ctx, ext) in SILENT_CONTEXTS else self.world.fresh_tone()
        ch.originate_app = app
        ch.originate_args = app_args or ""
        target = DialplanLocation(context or "default", extension or "s", priority or 1)
        ch.originating = True
        ch.origin_target = target
        ch.originate_device = resource

        def start() -> None:
            if ch.hungup:
                return
            self.dial_event(ch, "", dialstring=resource)
            if timeout > 0:
                ch.originate_deadline = self.world.clock.now() + timeout
                self.arm_originate_timeout(ch)
            self.start_far_end(ch)

        self.world.defer(start)
        return ch

    def arm_originate_timeout(self, ch: Channel) -> None:
        if ch.originate_deadline is not None:
            self.world.schedule(max(0.0, ch.originate_deadline - self.world.clock.now()),
                                lambda: self._originate_timeout(ch), f"originate-timeout {ch.id}",
                                owner=ch)

    def _originate_answered(self, ch: Channel) -> None:
        ch.originating = False
        if ch.originate_app:
            args = ch.originate_args.split(",") if ch.originate_args else []
            if not self.life.enter_stasis(ch, ch.originate_app, args):
                self.life.hangup_channel(ch, CAUSE_NORMAL)
            return
        target = ch.origin_target or DialplanLocation()
        self.pbx.run_dialplan(ch, target.context, target.exten, target.priority)

    def _originate_timeout(self, ch: Channel) -> None:
        if ch.state == "Up" or ch.hungup:
            return
        self.dial_event(ch, "NOANSWER")
        ch.originating = False
        self.life.hangup_channel(ch, 0, quiet=True)


def hangup_dial_status(cause: int) -> str:
    """main/channel.c ast_hangup_cause_to_dial_status (20 is AST_CAUSE_UNREGISTERED too)."""
    return {CAUSE_BUSY: "BUSY", CAUSE_CONGESTION: "CONGESTION", 3: "CHANUNAVAIL",
            CAUSE_SUBSCRIBER_ABSENT: "CHANUNAVAIL"}.get(cause, "NOANSWER")
