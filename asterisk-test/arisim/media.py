"""What each party sends into its bridge and hears from it: the world's audio paths.

Local channels pass media through (main/core_unreal.c unreal_write queues every frame written to
one half on the other): a Local half in a bridge sends what its other half hears — the other
parties of the other half's bridge — so a recording of bridge A holds the tone of a party in
bridge B that a Local pair links to A (a blind or attended transfer), and vice versa. A half
whose other half sits in Stasis outside any bridge sends nothing; one whose other half runs the
dialplan sends that party's tone. Frames reach a lone Local half when the other half's bridge
mixes (softmix, three or more channels) or holds a party that sends media.
"""

from __future__ import annotations

from .model import Channel
from .world import World


class Media:
    """Reads the world; changes nothing. Used by whatever records audio (recordings.py,
    mixmonitor.py)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def voice(self, ch: Channel, seen: frozenset[str] = frozenset()) -> frozenset[int]:
        """The tones `ch` puts into its bridge right now (Local pass-through, see above)."""
        w = self.world
        if ch.destroyed or ch.hungup or ch.muted_in or ch.on_hold:
            return frozenset()
        other = w.peer(ch) if ch.tech == "Local" and ch.id not in seen else None
        if other is not None:
            if other.bridge_id is not None:
                return self.heard(other, seen | {ch.id})
            if other.in_stasis:
                return frozenset()
        if not ch.talking or not ch.tone_hz:
            return frozenset()
        return frozenset((ch.tone_hz,))

    def heard(self, ch: Channel, seen: frozenset[str] = frozenset()) -> frozenset[int]:
        """The tones `ch` receives from the other parties of its bridge. A suspended bridge
        channel (running a DTMF feature's application) neither hears nor is heard
        (main/bridge_channel.c bridge_channel_internal_suspend_nolock: technology leave)."""
        w = self.world
        bridge = w.bridges.get(ch.bridge_id or "")
        if bridge is None or ch.suspended:
            return frozenset()
        out: set[int] = set()
        for cid in bridge.channels:
            if cid != ch.id:
                out |= self.bridge_voice(w.channels[cid], seen)
        return frozenset(out)

    def bridge_voice(self, ch: Channel, seen: frozenset[str] = frozenset()) -> frozenset[int]:
        """What `ch` puts into its bridge: its voice unless its bridge channel is suspended."""
        return frozenset() if ch.suspended else self.voice(ch, seen)

    def frames_out(self, ch: Channel, seen: frozenset[str] = frozenset()) -> bool:
        """Whether frames flow from `ch` into its bridge when it is alone there."""
        w = self.world
        if ch.destroyed:
            return False
        other = w.peer(ch) if ch.tech == "Local" and ch.id not in seen else None
        if other is not None and other.bridge_id is not None:
            bridge = w.bridges.get(other.bridge_id)
            if bridge is None:
                return False
            if len(bridge.channels) + len(bridge.recorder_ids) > 2:  # softmix mixes always
                return True
            return any(self.frames_out(w.channels[c], seen | {ch.id})
                       for c in bridge.channels if c != other.id)
        return ch.sends_media and not ch.on_hold
