"""Channel life: creation, Stasis entry and exit, state changes, answer and hangup.

Event order and subscriptions follow the traces and res/res_stasis.c / res/stasis/app.c:

* a channel that enters Stasis from the dialplan is subscribed only while in Stasis, so its
  ChannelDestroyed is not delivered (basic_inbound, sip_caller_slow_answer); channels made by
  /channels/create or originate with `app` are subscribed explicitly until destroyed, so they get
  ChannelDialplan before StasisStart and ChannelDestroyed at the end (busy, sip_basic);
* a hangup gives ChannelHangupRequest, ChannelLeftBridge, StasisEnd, then ChannelDestroyed;
  DELETE /channels is a soft hangup (cause 32 = AST_SOFTHANGUP_EXPLICIT, soft: true); a far-end
  hangup queues one with the hangup cause (Local: `cause`; PJSIP BYE: no cause, as traced);
* hanging up one half of a Local pair hangs up the other with the same cause (blind_transfer);
* a channel spied by snoops is destroyed only after they end, each on its next tick: the snoop's
  RecordingFinished and StasisEnd come before the spied channel's ChannelDestroyed
  (destroy_channel; observed/hook_mode_*).

The part publishes `HangupStarted`, `ChannelHungUp` and `ChannelGone` on the bus; the far end of
a Local half it answers and a dialled channel that hangs up are the dialling part's (`FarEnd`),
and a channel an application still runs on (FastAGI) is kept until it returns (`Applications`).
"""

from __future__ import annotations

import uuid
from typing import Protocol

from .bridges import Bridging
from .bus import ChannelGone, ChannelHungUp, HangupStarted
from .dialplan import DEFAULT_PJSIP_CONTEXT, PJSIP_CONTEXTS, parse_local
from .model import (
    CAUSE_NORMAL,
    SOFTHANGUP_EXPLICIT,
    CallerId,
    Channel,
    DialplanLocation,
    cause_text,
)
from .world import World

# Virtual seconds a hangup queued on the other Local half takes to be read (traces busy,
# atxfer_ami_in_stasis_bridge: about 1-2 ms).
LOCAL_HANGUP_DELAY = 0.002
# A half that was in Stasis is destroyed only after its Stasis thread wound down, a few ms
# after its StasisEnd: only then is the hangup queued on the other half (trace blind_transfer:
# the app's DELETE of ";2" 2 ms after its DELETE of ";1" found ";2" with no hangup queued).
STASIS_EXIT_DELAY = 0.003
# A Snoop channel is driven by a 20-ms timer (res_stasis_snoop.c: ast_timer_set_rate 50/s): it
# notices that its spied channel hung up on its next tick, 0-20 ms later (traced: 0-17 ms;
# record_channel_in_bridge: 12 ms after the DELETE). Half a tick, as on average.
SNOOP_TICK = 0.01


class FarEnd(Protocol):
    def far_answered(self, ch: Channel) -> None: ...

    def dial_hung_up(self, ch: Channel) -> None: ...


class Applications(Protocol):
    def hold_destroy(self, ch: Channel) -> bool: ...


class ChannelLife:
    """Channels on one World: made, put in and out of Stasis, answered, hung up, destroyed."""

    def __init__(self, world: World, bridging: Bridging, far_end: FarEnd,
                 apps: Applications) -> None:
        self.world = world
        self.bridging = bridging
        self.far_end = far_end
        self.apps = apps

    # -------------------------------------------------------------- creation
    def register(self, ch: Channel) -> Channel:
        self.world.channels[ch.id] = ch
        self.world.emit("ChannelCreated", {"channel": ch.json()}, channels=[ch])
        return ch

    def new_local_pair(
        self, resource: str, id1: str | None = None, id2: str | None = None
    ) -> tuple[Channel, Channel]:
        """Both halves of `Local/<exten>@<context>`: ";1" is the outgoing side, ";2" runs the
        dialplan at exten@context (main/core_local.c)."""
        exten, context = parse_local(resource)
        suffix = self.world.next_unreal()
        now = self.world.clock.epoch()
        uid1 = id1 or self.world.new_uniqueid()
        uid2 = id2 or self.world.new_uniqueid()
        base = f"Local/{resource}-{suffix}"
        ch1 = Channel(id=uid1, name=f"{base};1", tech="Local", resource=resource,
                      creationtime=now, half=1, sends_media=False,
                      dialplan=DialplanLocation(context, exten, 1))
        ch2 = Channel(id=uid2, name=f"{base};2", tech="Local", resource=resource,
                      creationtime=now, half=2, state="Ring", sends_media=False,
                      dialplan=DialplanLocation(context, exten, 1))
        ch1.peer_id, ch2.peer_id = uid2, uid1
        self.register(ch1)
        self.register(ch2)
        return ch1, ch2

    def new_tech_channel(
        self, tech: str, resource: str, uid: str | None = None, state: str = "Down"
    ) -> Channel:
        """A channel of a phone technology (PJSIP/...), named like "PJSIP/200-00000000"."""
        return self.register(self.build_tech_channel(tech, resource, uid, state))

    def build_tech_channel(
        self, tech: str, resource: str, uid: str | None = None, state: str = "Down"
    ) -> Channel:
        """new_tech_channel without publishing it yet (ChannelCreated comes at register)."""
        context = PJSIP_CONTEXTS.get(resource, DEFAULT_PJSIP_CONTEXT)
        return Channel(
            id=uid or self.world.new_uniqueid(),
            name=f"{tech}/{resource}-{self.world.next_tech(tech)}",
            tech=tech,
            resource=resource,
            creationtime=self.world.clock.epoch(),
            state=state,
            protocol_id=str(uuid.uuid4()) if tech == "PJSIP" else "",
            dialplan=DialplanLocation(context, "s", 1),
            sends_media=tech != "Local",
        )

    # ---------------------------------------------------------------- state
    def set_state(self, ch: Channel, state: str) -> None:
        if ch.state == state or ch.destroyed:
            return
        ch.state = state
        self.world.emit_channel("ChannelStateChange", ch)

    def set_dialplan_app(self, ch: Channel, app: str, data: str) -> None:
        """Moving to a dialplan application publishes ChannelDialplan (to current subscribers)."""
        ch.dialplan.app_name = app
        ch.dialplan.app_data = data
        self.world.emit_channel("ChannelDialplan", ch, dialplan_app=app, dialplan_app_data=data)

    def answer_channel(self, ch: Channel) -> None:
        """The channel goes Up; for a Local half the other half is answered too."""
        if ch.state == "Up" or ch.destroyed:
            return
        self.set_state(ch, "Up")
        other = self.world.peer(ch)
        if other is not None and other.state != "Up":
            self.far_end.far_answered(other)

    def set_variable(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.world.emit_channel("ChannelVarset", ch, variable=name, value=value)

    # --------------------------------------------------------------- Stasis
    def enter_stasis(self, ch: Channel, app: str, args: list[str],
                     replace: Channel | None = None) -> bool:
        """Stasis(app,args): StasisStart, or False when the app has no WebSocket (res_stasis.c
        stasis_app_exec: "Stasis app '%s' not registered/active")."""
        if ch.destroyed or ch.hungup:
            return False
        data = ",".join([app, *args])
        if ch.dialplan.app_name != "Stasis" or ch.dialplan.app_data != data:
            self.set_dialplan_app(ch, "Stasis", data)
        if not self.world.hub.active(app):
            self.world.warnings.append(
                f"channel {ch.name} entered Stasis({data}) with {app!r} inactive")
            ch.variables["STASISSTATUS"] = "FAILED"
            return False
        ch.stasis_app = app
        ch.stasis_args = list(args)
        ch.stasis_unsubscribed = False
        fields: dict[str, object] = {"args": list(args), "channel": ch.json()}
        if replace is not None:
            fields["replace_channel"] = replace.json()
            self.unsubscribe_replaced(replace, app)
        self.world.emit("StasisStart", fields, channels=[ch])
        return True

    def unsubscribe_replaced(self, ch: Channel, app: str) -> None:
        """res_stasis.c send_start_msg_snapshots (l. 1121-1123 on the 22 branch): a StasisStart
        with replace_channel drops one reference of the app's subscription to the replaced
        channel (app_unsubscribe_channel_id; res/stasis/app.c unsubscribe counts `interested`).
        A created channel (two references: create + Stasis) still gets its hangup events but no
        ChannelDestroyed; a channel that entered from the dialplan gets only its StasisEnd
        (traces sip_blind_transfer_refer, sip_attended_transfer_refer)."""
        if app in ch.explicit_apps:
            ch.explicit_apps.discard(app)
        elif ch.stasis_app == app:
            ch.stasis_unsubscribed = True

    def leave_stasis(self, ch: Channel) -> None:
        """StasisEnd goes to the app's topic directly (res_stasis.c app_send_end_msg), so the
        app gets it even when it no longer holds a subscription to the channel."""
        app = ch.stasis_app
        if app is None:
            return
        self.world.emit("StasisEnd", {"channel": ch.json()}, channels=[ch], apps=[app])
        ch.stasis_app = None
        ch.stasis_unsubscribed = False
        ch.variables["STASISSTATUS"] = "SUCCESS"

    # --------------------------------------------------------------- hangup
    def hangup_channel(
        self,
        ch: Channel,
        cause: int = CAUSE_NORMAL,
        *,
        soft: bool = False,
        report_cause: bool = True,
        tech_cause: int | None = None,
        quiet: bool = False,
        delay: float = 0.0,
        soft_flag: int = SOFTHANGUP_EXPLICIT,
    ) -> None:
        """Hang a channel up and tear down what hangs off it, in Asterisk's event order.

        soft: DELETE /channels (ChannelHangupRequest cause 32, soft: true) — `cause` is then the
        hangup cause set before (reason_code, default 16). Otherwise a queued hangup from the far
        end, reporting `cause` unless report_cause is False (PJSIP BYE). quiet: no
        ChannelHangupRequest (a Snoop channel whose target went away: record_channel_in_bridge).
        delay: virtual seconds between the ChannelHangupRequest and the teardown of a channel in
        Stasis (a hangup queued by the other Local half is read a moment later: in
        atxfer_ami_in_stasis_bridge the app's DELETE still finds the channel).
        soft_flag: the AST_SOFTHANGUP_* flag a soft hangup reports as its `cause` (main/channel.c
        ast_softhangup): EXPLICIT (32) for DELETE /channels, DEV (1) for a transfer's target.
        """
        if ch.hungup or ch.destroyed:
            return
        ch.hangup_cause = cause
        ch.tech_cause = tech_cause
        if not quiet:
            fields: dict[str, object] = {}
            if soft:
                fields = {"cause": soft_flag, "soft": True}
            elif report_cause:
                fields = {"cause": cause}
                if tech_cause is not None:
                    fields["tech_cause"] = tech_cause
            self.world.emit_channel("ChannelHangupRequest", ch, **fields)
        if delay > 0 and ch.in_stasis:
            self.world.schedule(delay, lambda: self._teardown(ch), f"hangup {ch.name}", owner=ch)
            return
        self._teardown(ch)

    def _teardown(self, ch: Channel) -> None:
        if ch.hungup or ch.destroyed:
            return
        ch.hungup = True
        ch.cancel_timers()
        self.world.bus.publish(HangupStarted(ch))
        if ch.bridge_id is not None:
            bridge = self.world.bridges.get(ch.bridge_id)
            if bridge is not None:
                self.bridging.bridge_remove(bridge, ch)
        self.world.bus.publish(ChannelHungUp(ch))
        was_in_stasis = ch.in_stasis
        self.leave_stasis(ch)
        self.far_end.dial_hung_up(ch)
        if self.apps.hold_destroy(ch) or self._held_by_spied(ch):
            # An application still owns the channel (a FastAGI session): it is destroyed when
            # that ends (ast_hangup runs after the application returns).
            ch.destroy_pending = True
            return
        self.destroy_channel(ch, STASIS_EXIT_DELAY if was_in_stasis else 0.0)

    def _held_by_spied(self, snoop: Channel) -> bool:
        """A snoop ending because its spied channel hangs up: destroyed after that channel
        (snoop_destroy releases the spyee's reference before the snoop channel's own)."""
        spied = self.world.channels.get(snoop.snoop_of or "")
        return spied is not None and spied.unlinked and not spied.destroyed

    def destroy_channel(self, ch: Channel, peer_delay: float = 0.0) -> None:
        """ast_hangup (main/channel.c), then the channel's ChannelDestroyed.

        ast_hangup unlinks the channel (ARI answers 404 from now on) and detaches its
        audiohooks (destroy_hooks → ast_audiohook_detach_list: status DONE), then its tech's
        hangup queues one on the other Local half. A snoop spying on it notices on its next
        tick (res_stasis_snoop.c snoop_read returns NULL): its recording finishes
        (res_stasis_recording.c record_file: RecordingFinished, state done), it leaves Stasis
        (StasisEnd) and snoop_stasis_thread hangs it up, without a ChannelHangupRequest. The
        snoop held a reference to the spied channel (spyee_chan, released in snoop_destroy), so
        only then is the spied channel's ChannelDestroyed published, the snoop's after it
        (observed/hook_mode_*: RecordingFinished of each leg's snoop before the leg's
        ChannelDestroyed, even for a callee that got no ChannelHangupRequest at all).
        """
        if ch.destroyed or ch.unlinked:
            return
        ch.hungup = True
        ch.unlinked = True
        ch.destroy_pending = False
        ch.cancel_timers()
        ch.dialplan.app_name = ""
        ch.dialplan.app_data = ""
        spies = [c for c in self.world.channels.values() if c.snoop_of == ch.id and not c.hungup]
        if spies:
            def tick() -> None:
                for snoop in spies:  # ast_hangup with no cause set: 0 (traced)
                    self.hangup_channel(snoop, 0, quiet=True)
                self._publish_destroyed(ch)
                for snoop in spies:
                    if snoop.destroy_pending:
                        self.destroy_channel(snoop)

            self.world.schedule(SNOOP_TICK, tick, f"snoops of {ch.name} end")
        else:
            self._publish_destroyed(ch)
        peer = self.world.peer(ch)
        if peer is not None:
            # core_local.c: the other half gets a hangup queued with the same cause
            cause = ch.hangup_cause
            if peer_delay > 0:
                self.world.schedule(peer_delay, lambda: self.hangup_channel(
                    peer, cause, delay=LOCAL_HANGUP_DELAY), f"local hangup {peer.name}")
            else:
                self.hangup_channel(peer, cause, delay=LOCAL_HANGUP_DELAY)

    def _publish_destroyed(self, ch: Channel) -> None:
        ch.destroyed = True
        fields: dict[str, object] = {"cause": ch.hangup_cause,
                                     "cause_txt": cause_text(ch.hangup_cause)}
        if ch.tech_cause is not None:
            fields["tech_cause"] = ch.tech_cause
        fields["channel"] = ch.json()
        self.world.emit("ChannelDestroyed", fields, channels=[ch])
        self.world.bus.publish(ChannelGone(ch))
        for other in list(self.world.channels.values()):
            if other.snoop_of == ch.id and not other.hungup:  # one made after the tick
                self.hangup_channel(other, CAUSE_NORMAL, quiet=True)

    def far_hangup(self, ch: Channel, cause: int = CAUSE_NORMAL) -> None:
        """The party hangs up (BYE, or the Local dialplan ends)."""
        self.hangup_channel(ch, cause, report_cause=ch.tech != "PJSIP")

    # ------------------------------------------------------------- inbound
    def start_call(
        self,
        endpoint: str = "PJSIP/trunk",
        caller_number: str = "+14155550100",
        caller_name: str = "Client",
        args: list[str] | None = None,
        app: str = "verbatim",
        tone_hz: int | None = None,
        sends_media: bool = True,
        exten: str | None = None,
        channel_id: str | None = None,
    ) -> Channel:
        """An inbound call from `endpoint` that enters Stasis(app, args) in state Ring, as a call
        from a SIP trunk through [from-trunk] does (trace sip_caller_slow_answer)."""
        args = ["inbound", "201"] if args is None else list(args)
        tech, _, resource = endpoint.partition("/")
        ch = self.new_tech_channel(tech or "PJSIP", resource or "trunk", channel_id, state="Ring")
        ch.protocol_id = f"{uuid.uuid4().hex[:12]}@127.0.0.1" if ch.tech == "PJSIP" else ""
        ch.caller = CallerId(caller_name, caller_number)
        ch.tone_hz = tone_hz if tone_hz is not None else self.world.fresh_tone()
        ch.sends_media = sends_media
        ch.dialplan.exten = exten or (args[1] if len(args) > 1 else "s")
        ch.dialplan.priority = 2
        if not self.enter_stasis(ch, app, args):
            self.hangup_channel(ch, CAUSE_NORMAL, report_cause=False)
        return ch
