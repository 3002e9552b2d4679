"""Blind transfers.

Traces blind_transfer and sip_blind_transfer_refer: a Local pair appears. Its ;1 takes the
transferer's place in the call bridge (StasisStart, no args, replace_channel = transferer); its
;2 runs the transfer context, which sends it into the app with args ("transfer", exten) like a
new call. The two StasisStarts come in either order; the pair is linked by its shared name. The
app bridges ;2 with the dialled target in a bridge of its own: the call bridge, still recorded,
hears the target through the pair.
"""

from __future__ import annotations

import dataclasses

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.consent import announce_linked, present_parties
from recorder.model.decisions import path_changed
from recorder.model.dialing import dial_leg, start_if_due
from recorder.model.flow import (
    TARGET_RE,
    Result,
    Step,
    for_call,
)
from recorder.model.settings import CallSettings
from recorder.model.state import (
    ENDED,
    ENDING,
    LEG_UP,
    Leg,
    ModelState,
    StasisLeg,
)
from recorder.policy import Join
from recorder.policy.rules import target_label


def local_replaces(state: ModelState, e: ev.StasisStart, settings: CallSettings) -> Result:
    assert e.replace_channel is not None
    replaced_id = e.replace_channel.id
    # ;1 of a blind transfer's pair; either half of an attended transfer's Local/_attended pair
    base = e.channel.name[:-2] if e.channel.name.endswith((";1", ";2")) else None
    pending = state.pending_locals.get(base or "")

    def body(s: Step) -> None:
        call = s.call
        replaced = call.legs.get(replaced_id)
        if replaced is None:
            return
        call.legs[e.channel.id] = Leg(
            channel_id=e.channel.id,
            role="local",
            channel_name=e.channel.name,
            started_at=s.at,
            state=LEG_UP,
            local_base=base,
            stasis=StasisLeg(replaces=replaced_id),
        )
        replaced.stasis = dataclasses.replace(replaced.stasis, replaced_by=e.channel.id)
        if replaced.channel_id == call.caller_channel and not replaced.in_bridge:
            # Attended transfer, destination "application" (trace
            # sip_attended_transfer_unbridged): the consultation leg was in the app but not in a
            # bridge; the Local ;2 takes its place, so it becomes the call's caller and the app
            # finishes connecting it (into the call bridge; dialling goes on as before).
            call.caller_channel = e.channel.id
            call.legs[e.channel.id].role = "caller"
            s.add(cmd.AddChannel(call.call_id, call.bridge_id, e.channel.id))
        s.record("transfer.replaced", e.channel.id, replaces=replaced_id, role=replaced.role)
        s.log("transfer.replaced", channel_id=e.channel.id, replaces=replaced_id)
        if pending is not None:
            attach_target(s, pending[0], pending[1])

    new_state, out = for_call(state, state.by_channel[replaced_id], e, settings, body)
    if pending is not None and base is not None:  # a new map: the old state shares it
        rest = {k: v for k, v in new_state.pending_locals.items() if k != base}
        new_state = dataclasses.replace(new_state, pending_locals=rest)
    return new_state, out


def forward_half(state: ModelState, e: ev.StasisStart) -> str | None:
    """The call whose followed forward created this Local ;2, if any."""
    if not e.channel.name.endswith(";2"):
        return None
    base = e.channel.name[:-2]
    call = state.calls.get(state.by_local.get(base, ""))
    if call is not None and any(leg.local_base == base and leg.role == "callee"
                                for leg in call.legs.values()):
        return call.call_id
    return None


def attach_forward_half(state: ModelState, e: ev.StasisStart, call_id: str,
                        settings: CallSettings) -> Result:
    exten = e.args[1] if len(e.args) > 1 else ""
    return for_call(state, call_id, e, settings,
                    lambda s: attach_target(s, e.channel, exten, forwarded=True))


def transfer_half(state: ModelState, e: ev.StasisStart, settings: CallSettings) -> Result:
    base = e.channel.name[:-2]
    exten = e.args[1] if len(e.args) > 1 else ""
    call_id = state.by_local.get(base)
    if call_id is not None:
        return for_call(state, call_id, e, settings, lambda s: attach_target(s, e.channel, exten))
    new_state = dataclasses.replace(
        state, pending_locals={**state.pending_locals, base: (e.channel, exten)})
    return new_state, [cmd.Log("", "transfer.pending", "info", {"channel_id": e.channel.id})]


def attach_target(s: Step, half: ev.ChannelInfo, exten: str, forwarded: bool = False) -> None:
    """Connect the pair's ;2 to the transfer target: a bridge of its own, then dial. (A
    followed forward's target joined the call's path when the forward was seen.)"""
    call = s.call
    base = half.name[:-2]
    call.legs[half.id] = Leg(
        channel_id=half.id,
        role="local",
        channel_name=half.name,
        started_at=s.at,
        state=LEG_UP,
        local_base=base,
    )
    if not TARGET_RE.match(exten) or call.phase in (ENDING, ENDED):
        # a target no dial string may carry is a fault; a call already ending, the race of a
        # hang-up with the transfer (its Local ;2 came after): no alarm
        level = "warning" if not TARGET_RE.match(exten) else "info"
        s.log("transfer.refused", level, channel_id=half.id, exten=exten, phase=call.phase)
        s.add(cmd.Hangup(call.call_id, half.id))
        return
    bridge_id = f"{call.call_id}-b{len(call.stasis.extra_bridges) + 2}"
    call.stasis.extra_bridges.append(bridge_id)
    s.add(cmd.CreateBridge(call.call_id, bridge_id, call.call_id))
    s.add(cmd.AddChannel(call.call_id, bridge_id, half.id))
    s.record("transfer.dialing", half.id, exten=exten)
    if not forwarded:
        path_changed(s, "transfer", half.id, join=Join(exten, "transfer"))
    leg = dial_leg(s, exten, via=half.id, join_bridge=bridge_id)
    leg.party = target_label(len(call.joins) - 1)


def on_attended_transfer(state: ModelState, e: ev.Event, settings: CallSettings,
                         _call_id: str) -> Result:
    """BridgeAttendedTransfer: the transferer's two calls are joined (trace
    sip_attended_transfer_refer, destination_type "link": a Local/_attended pair replaced each of
    its legs, both bridges and both recordings go on). Each call's story says so and names the
    other: the conversation is now in two files, one per call, each covering its own parties."""
    assert isinstance(e, ev.BridgeAttendedTransfer)
    first = state.by_channel.get(e.first_leg)
    second = state.by_channel.get(e.second_leg)
    out: list[cmd.Command] = []
    linked = e.destination_type in ("link", "application")
    # Who each side gains: the other call's parties, as they were before this event.
    gains = {
        mine: [dataclasses.replace(p, label=f"linked-{p.label}", heard=None)
               for p in present_parties(state.calls[other])]
        for mine, other in ((first, second), (second, first))
        if linked and mine and other and mine != other and other in state.calls
    }
    reached = {mine: joined_number(state, other, e) for mine, other in
               ((first, second), (second, first)) if linked and mine and other and mine != other}
    for mine, other, leg in ((first, second, e.first_leg), (second, first, e.second_leg)):
        if mine is None or (mine == other and leg == e.second_leg):
            continue

        def body(s: Step, other: str | None = other, leg: str = leg,
                 mine: str = mine) -> None:
            s.record("transfer.attended", leg, destination_type=e.destination_type,
                     result=e.result, linked_call=other, is_external=e.is_external)
            s.log("call.transfer", channel_id=leg, kind="attended",
                  destination_type=e.destination_type, linked_call=other, result=e.result)
            if other and other not in s.call.linked_calls:
                s.call.linked_calls.append(other)
            number = reached.get(mine)
            if number is not None:
                path_changed(s, "attended transfer", leg,
                             join=Join(number, "transfer", attended=True))
            announce_linked(s, gains.get(mine, []))
            start_if_due(s)

        state, commands = for_call(state, mine, e, settings, body)
        out.extend(commands)
    return state, out


def joined_number(state: ModelState, other: str | None,
                  e: ev.BridgeAttendedTransfer) -> str | None:
    """Whom an attended transfer brings into a call from the `other` call: its party that is
    not the transferer (policy's transfer target)."""
    call = state.calls.get(other or "")
    if call is None:
        return None
    for leg in call.legs.values():
        if (leg.channel_id in (e.first_leg, e.second_leg) or leg.state == "gone"
                or leg.role == "local" or leg.stasis.replaced_by is not None):
            continue
        if leg.role == "caller":
            return call.caller_number
        if leg.answered_at is not None:
            return leg.number or call.target
    return None


def on_blind_transfer(state: ModelState, e: ev.Event, settings: CallSettings,
                      call_id: str) -> Result:
    assert isinstance(e, ev.BridgeBlindTransfer)

    def body(s: Step) -> None:
        s.record(
            "transfer.blind",
            e.channel.id,
            exten=e.exten,
            context=e.context,
            result=e.result,
            is_external=e.is_external,
            local=e.replace_channel.id if e.replace_channel else None,
        )
        s.log(
            "call.transfer",
            channel_id=e.channel.id,
            exten=e.exten,
            context=e.context,
            result=e.result,
        )

    return for_call(state, call_id, e, settings, body)
