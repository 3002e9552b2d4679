"""A dialled phone that answers 302 Moved Temporarily (call forwarding), as Asterisk 22 handles it.

res/res_pjsip_session.c session_inv_on_redirected sets the channel's call_forward to the Contact's
user ("300"; redirect_method=user, the default), and res/res_pjsip_diversion.c
diversion_incoming_response sets the redirecting party: the session's caller id when it has a
number, else the 302's To header — shown as `caller_rdnis` in the channel's JSON from then on
("+12125550199" for an originate with a callerId, "400" for a created channel without one).
What happens next depends on how the leg was dialled:

* /channels/create + /dial (res/stasis/control.c): the channel sits in the ARI dial bridge, whose
  main/bridge_channel.c bridge_handle_trip does not follow the forward ("all we do is raise an
  event") — it publishes Dial CANCEL with `forward` each time it wakes (three times in the trace),
  while chan_pjsip queues a hangup with cause 23 and tech_cause 302. Events: ChannelHangupRequest
  (cause 23, tech_cause 302), Dial CANCEL forward ×3, StasisEnd, ChannelDestroyed (cause 23,
  tech_cause 302) — trace sip_forward_302_create_dial. The app must dial the new target itself.
* Dial() in the dialplan (apps/app_dial.c do_forward): followed like originate, see appdial.py.
* POST /channels (originate, main/dial.c): monitor_dial → handle_call_forward dials
  `Local/<forward>@<FORWARD_CONTEXT or the channel's context>` (or `tech/resource` when the
  forward names a technology) through begin_dial_channel (its Dial "" is published before the app
  is subscribed), publishes Dial CANCEL with `forward` and `forwarded` (the new channel; res/stasis/
  app.c call_forwarded_handler subscribes the app to it), and ast_hangup()s the original: no
  ChannelHangupRequest, ChannelDestroyed cause 0 "Unknown". The Local ";2" runs the dialplan
  (from-internal → Stasis(verbatim,outbound,300)), so it enters the app like a new call; when it is
  answered, ";1" is the originate's answered channel and enters Stasis with the originate's app
  and args — trace sip_forward_302_originate. A forward to an extension that does not exist fails
  the Local call (main/core_local.c local_call): Dial CANCEL without `forwarded`, the original is
  destroyed, and the originate ends there.
"""

from __future__ import annotations

from typing import Protocol

from .channels import ChannelLife
from .model import Channel
from .world import World

REDIRECTED = 23  # AST_CAUSE_REDIRECTED_TO_NEW_DESTINATION
SIP_MOVED_TEMPORARILY = 302
# bridge_handle_trip wakes this many times between the 302 and the hangup (traced).
DIAL_BRIDGE_TRIPS = 3
# Virtual seconds from the 302 to the channel's teardown (trace: 1.022 → 1.024/1.025).
FORWARD_TEARDOWN_DELAY = 0.002


class Legs(Protocol):
    """The Dialling part as a forward uses it to dial the new target."""

    def setup_far_party(self, ch: Channel) -> None: ...

    def dial_event(self, ch: Channel, status: str, dialstring: str = "",
                   forward: str = "") -> None: ...

    def arm_originate_timeout(self, ch: Channel) -> None: ...

    def start_far_end(self, ch: Channel) -> None: ...


class DialForward(Protocol):
    def app_dial_forward(self, ch: Channel, target: str) -> None: ...


class Forwards:
    """302s on one World, for the Dialling part that owns it."""

    def __init__(self, world: World, life: ChannelLife, dialling: Legs,
                 app_dial: DialForward) -> None:
        self.world = world
        self.life = life
        self.dialling = dialling
        self.app_dial = app_dial

    def far_forward(self, ch: Channel, target: str) -> None:
        """The party behind `ch` answers 302 to `target` ("300" or "PJSIP/300")."""
        if ch.hungup or ch.destroyed or not target:
            return
        ch.caller_rdnis = ch.caller.number or ch.resource
        if ch.dialed_by is not None:
            self.app_dial.app_dial_forward(ch, target)
        elif ch.originating:
            self._follow_forward(ch, target)
        else:
            self._refuse_forward(ch, target)

    # ---------------------------------------------------------- ARI /dial
    def moved_temporarily(self, ch: Channel) -> int | None:
        """The phone answered 302: its channel is hung up with cause 23 (tech_cause 302 for
        PJSIP), ChannelHangupRequest; the tech cause, for the hangup that follows."""
        tech_cause = SIP_MOVED_TEMPORARILY if ch.tech == "PJSIP" else None
        ch.hangup_cause, ch.tech_cause = REDIRECTED, tech_cause
        fields: dict[str, object] = {"cause": REDIRECTED}
        if tech_cause is not None:
            fields["tech_cause"] = tech_cause
        self.world.emit_channel("ChannelHangupRequest", ch, **fields)
        return tech_cause

    def _refuse_forward(self, ch: Channel, target: str) -> None:
        tech_cause = self.moved_temporarily(ch)

        def trip() -> None:
            if ch.destroyed:
                return
            for _ in range(DIAL_BRIDGE_TRIPS):
                self.world.emit("Dial", {"dialstatus": "CANCEL", "forward": target,
                                         "dialstring": "", "peer": ch.json()}, channels=[ch])
            ch.dialing = False
            self.life.hangup_channel(ch, REDIRECTED, tech_cause=tech_cause, quiet=True)

        ch.cancel_timers()
        self.world.schedule(FORWARD_TEARDOWN_DELAY, trip, f"302 {ch.name}", owner=ch)

    # ----------------------------------------------------------- originate
    def _follow_forward(self, ch: Channel, target: str) -> None:
        if "/" in target:
            tech, device = target.split("/", 1)
        else:
            context = ch.variables.get("FORWARD_CONTEXT") or ch.dialplan.context
            tech, device = "Local", f"{target}@{context}"
        if tech == "Local":
            new, other = self.life.new_local_pair(device)
            exists = self.world.dialplan.lookup(other.dialplan.context, other.dialplan.exten)
        else:
            new = self.life.new_tech_channel(tech, device)
            exists = []
        new.dialplan.app_name, new.dialplan.app_data = "AppDial2", "(Outgoing Line)"
        self.dialling.setup_far_party(new)
        ch.cancel_timers()
        ch.originating = False
        if exists is None:  # core_local.c local_call: "No such extension/context"
            self.life.hangup_channel(new, 0, quiet=True)
            self.world.emit("Dial", {"dialstatus": "CANCEL", "forward": target, "dialstring": "",
                                     "peer": ch.json()}, channels=[ch])
            self.life.hangup_channel(ch, 0, quiet=True)
            return
        new.originating = True
        new.originate_device = device
        new.originate_app, new.originate_args = ch.originate_app, ch.originate_args
        new.origin_target = ch.origin_target
        new.originate_deadline = ch.originate_deadline
        self.dialling.dial_event(new, "", dialstring=device)  # before anyone is subscribed to it
        subscribers = ch.subscribers()
        self.world.emit("Dial", {"dialstatus": "CANCEL", "forward": target, "dialstring": "",
                                 "peer": ch.json(), "forwarded": new.json()}, channels=[ch])
        new.explicit_apps |= subscribers  # app.c call_forwarded_handler
        self.dialling.arm_originate_timeout(new)
        self.dialling.start_far_end(new)
        self.life.hangup_channel(ch, 0, quiet=True)
