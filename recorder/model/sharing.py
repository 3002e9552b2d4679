"""Two recorded calls in one bridge (hook mode).

An attended transfer between two Dial() bridges swaps the transferee into the consultation
call's bridge in the transferer's place (main/bridge.c bridge_swap_attended_transfer,
destination_type "bridge"; observed/hook_mode_attended_transfer_refer): the caller of one call
now talks with the target of the other, each still a leg of its own call and recorded by its
own snoop. Each call notes, in `Call.hook.peers`, when a channel of the other shared a bridge with
its legs; the coverage proof counts that as talking (coverage.mixing_spans), so the seconds
after the transfer are in both calls' proofs, covered by each leg's own snoop.
"""

from __future__ import annotations

from recorder.ari import events as ev
from recorder.model.flow import Result, Step, for_call
from recorder.model.records import Peer
from recorder.model.settings import CallSettings
from recorder.model.state import ModelState


def _hooked(state: ModelState, channel_id: str) -> str | None:
    call = state.calls.get(state.by_channel.get(channel_id, ""))
    return call.call_id if call is not None and call.mode == "hook" else None


def peers_entered(state: ModelState, e: ev.ChannelEnteredBridge,
                  settings: CallSettings) -> Result:
    """`e.channel` entered a bridge: it and the channels of other calls already there are
    each other's peers."""
    assert e.channel is not None
    entered = e.channel.id
    mine = _hooked(state, entered)
    theirs = {cid: _hooked(state, cid) for cid in e.bridge.channels if cid != entered}
    foreign = {cid: call_id for cid, call_id in theirs.items()
               if call_id is not None and call_id != mine}
    out = []
    for call_id in sorted(set(foreign.values())):
        state, commands = for_call(state, call_id, e, settings,
                                   lambda s: _add(s, e.bridge.id, [entered]))
        out += commands
    if mine is not None and foreign:
        state, commands = for_call(state, mine, e, settings,
                                   lambda s: _add(s, e.bridge.id, sorted(foreign)))
        out += commands
    return state, out


def peers_left(state: ModelState, e: ev.ChannelLeftBridge, settings: CallSettings) -> Result:
    """`e.channel` left a bridge: it is no longer a peer there of any other call."""
    out = []
    for call in [c for c in state.calls.values() if c.hook.peers]:  # most have none
        if any(p.bridge == e.bridge.id and p.channel == e.channel.id and p.left is None
               for p in call.hook.peers):
            state, commands = for_call(state, call.call_id, e, settings,
                                       lambda s: _close(s, e.bridge.id, e.channel.id))
            out += commands
    return state, out


def _add(s: Step, bridge_id: str, channel_ids: list[str]) -> None:
    for cid in channel_ids:
        s.call.hook.peers.append(Peer(bridge_id, cid, s.at))


def _close(s: Step, bridge_id: str, channel_id: str) -> None:
    s.call.hook.peers = [p._replace(left=s.at)
                    if p.bridge == bridge_id and p.channel == channel_id and p.left is None else p
                    for p in s.call.hook.peers]
