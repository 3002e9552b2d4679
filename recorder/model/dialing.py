"""Dialling the target (Stasis mode): its legs and dial strings, a dialled leg entering the app,
and connecting the answered party once the recording runs. Used by recorder.model.starting (a new
call), recorder.model.outcomes (what the dial did) and recorder.model.transfers.
"""

from __future__ import annotations

from dataclasses import replace

from recorder.ari import events as ev
from recorder.common.numbers import is_extension, normalise
from recorder.model import commands as cmd
from recorder.model.ending import hang_up
from recorder.model.flow import (
    Step,
    play,
)
from recorder.model.phases import transition
from recorder.model.segments import (
    connect_callee,
    start_segment,
)
from recorder.model.settings import CallSettings
from recorder.model.state import (
    BRIDGED,
    CONNECTING,
    DIALING,
    LEG_DIALING,
    LEG_NEW,
    Call,
    Leg,
    StasisLeg,
)


def dialled_leg_ready(s: Step, e: ev.StasisStart) -> None:
    call = s.call
    leg = call.legs.get(e.channel.id)
    if leg is not None:
        leg.stasis = replace(leg.stasis, in_stasis=True)
    if leg is not None and leg.stasis.originated:
        # An originated leg enters the app once answered: join now if its turn has come.
        if (call.phase == CONNECTING and leg.channel_id == call.callee_channel
                and leg.stasis.waiting):
            leg.stasis = replace(leg.stasis, waiting=False)
            s.add(cmd.AddChannel(call.call_id, call.bridge_id, leg.channel_id))
        return
    if leg is None or leg.state != LEG_NEW:
        return
    leg.channel_name = e.channel.name
    wanted = call.phase == DIALING or (leg.stasis.join_bridge is not None and call.phase == BRIDGED)
    if not wanted:  # the caller gave up while the leg was being created
        hang_up(s, leg)
        return
    leg.state = LEG_DIALING
    caller = leg.stasis.via or call.caller_channel
    s.add(cmd.DialChannel(call.call_id, leg.channel_id, caller, s.settings.dial_timeout_s))
    s.record("dial.started", leg.channel_id, target=call.target)


def fill_numbers(call: Call, caller_number: str, settings: CallSettings) -> None:
    pattern = settings.extension_pattern
    region = settings.default_region
    call.caller_number = caller_number or None
    call.callee_number = call.target
    if call.direction == "inbound":
        call.caller_e164 = normalise(caller_number, default_region=region)
        if is_extension(call.target, pattern):
            call.extension = call.target
        else:  # a DID or a number: keep its E.164 form for search
            call.callee_e164 = normalise(call.target, default_region=region)
    elif call.direction == "outbound":
        call.extension = caller_number if is_extension(caller_number, pattern) else None
        call.callee_e164 = normalise(
            call.target, default_region=region, strip_prefix=settings.outside_line_prefix
        )
    else:  # internal: both sides are extensions; the caller's is the call's extension
        call.extension = caller_number if is_extension(caller_number, pattern) else call.target
    call.department = settings.departments.get(call.extension or "")
    if call.department is None and call.direction == "internal":
        call.department = settings.departments.get(call.target)


def dial(s: Step) -> None:
    call = s.call
    transition(s, DIALING)
    play(s, call.caller_channel, "ringback", s.settings.ringback_media)
    members = s.settings.ring_groups.get(call.target)
    if not members:
        dial_leg(s, call.target)
        return
    # A ring group rings every member at once; the first to answer is the callee.
    s.record("dial.ring_group", group=call.target, members=list(members))
    for member in members:
        dial_leg(s, member)
    call.callee_channel = None


def dial_leg(
    s: Step,
    target: str,
    forwarded_from: str | None = None,
    via: str | None = None,
    join_bridge: str | None = None,
) -> Leg:
    call = s.call
    leg_id = f"{call.call_id}-l{len(call.legs) + 1}"
    previous = call.legs.get(forwarded_from or "")
    leg = Leg(
        channel_id=leg_id,
        role="callee",
        channel_name="",
        started_at=s.at,
        number=target,  # its jurisdiction, for consent when it answers
        party=previous.party if previous else None,
        stasis=StasisLeg(
            forwarded_from=forwarded_from,
            via=via or (previous.stasis.via if previous else None),
            join_bridge=join_bridge or (previous.stasis.join_bridge if previous else None)),
    )
    call.legs[leg_id] = leg
    call.callee_channel = leg_id
    dial_string, args = endpoint(s.settings, call, target), f"dialed,{call.call_id}"
    if s.settings.dial_method == "originate":
        leg.stasis = replace(leg.stasis, originated=True)
        leg.state = LEG_DIALING
        s.add(cmd.Originate(call.call_id, leg_id, dial_string, args,
                            leg.stasis.via or call.caller_channel, s.settings.dial_timeout_s))
    else:
        s.add(cmd.CreateChannel(call.call_id, leg_id, dial_string, args,
                                leg.stasis.via or call.caller_channel))
    return leg


def endpoint(settings: CallSettings, call: Call, target: str) -> str:
    """The dial string: the call's own direction for its target; a forward to an outside
    number (a mobile) goes out through the outbound trunk, one to an extension stays inside."""
    if target == call.target:
        template = settings.dial_strings[call.direction]
    elif is_extension(target, settings.extension_pattern):
        template = settings.dial_strings["internal"]
    else:
        template = settings.dial_strings["outbound"]
    return template.replace("{target}", target).replace("{number}", target)


def stop_ringback(s: Step) -> None:
    call = s.call
    if call.stasis.playback_id:
        s.add(cmd.StopPlayback(call.call_id, call.stasis.playback_id))
        call.stasis.playback_id = call.stasis.playback_kind = None


def start_if_due(s: Step) -> None:
    """Policy records the bridged call from now: start once every announcement due is over."""
    call = s.call
    if (call.recording_due() and not call.prompts and call.phase == BRIDGED
            and call.stasis.current_recording is None and call.open_pause("stop") is None):
        start_segment(s)


def connect_answered(s: Step) -> None:
    """Ringback off; record first (the callee joins on RecordingStarted), or, when policy
    says no recording, connect at once."""
    call = s.call
    stop_ringback(s)
    if call.record:
        start_segment(s)
    else:
        connect_callee(s)


