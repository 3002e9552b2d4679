"""Bridges created by the application (res/stasis/stasis_bridge.c, res/ari/resource_bridges.c).

An application learns of a bridge once one of its channels enters it (control.c
app_subscribe_bridge): BridgeCreated is never sent to it, BridgeDestroyed is (traces). A bridge
recording's Recorder channel is "lonely" (AST_BRIDGE_CHANNEL_FLAG_LONELY): when the last party
leaves, it is kicked out and the recording ends at once (caller_abandons), see recordings.py.

The part publishes on the bus: `BridgeEmptied` (the last party left, not by a swap),
`LeftBridge` (a party left, not by a swap; Dial()'s basic bridges dissolve) and
`BridgeDestroying`.
"""

from __future__ import annotations

import uuid

from .bus import BridgeDestroying, BridgeEmptied, LeftBridge
from .model import Bridge, Channel
from .world import World

BRIDGE_TYPES = {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single",
                "sdp_label"}


class Bridging:
    """Bridges on one World: create, join, leave, swap, destroy."""

    def __init__(self, world: World) -> None:
        self.world = world

    def create_bridge(self, type_str: str | None, name: str | None,
                      bridge_id: str | None) -> Bridge | None:
        """None when the type combination is invalid (res_stasis.c bridge_create_common)."""
        types = [t.strip() for t in (type_str or "mixing").split(",")]
        mixing = "mixing" in types
        holding = "holding" in types
        if "video_sfu" in types:
            mixing, holding = True, False
        if (not mixing and not holding) or (mixing and holding):
            return None
        video_mode = "sfu" if "video_sfu" in types else (
            "single" if "video_single" in types else "talker")
        bridge = Bridge(
            id=bridge_id or str(uuid.uuid4()),
            name=name or "",
            bridge_type="holding" if holding else "mixing",
            creationtime=self.world.clock.epoch(),
            video_mode=video_mode if not holding else "none",
        )
        bridge.settle_technology()
        self.world.bridges[bridge.id] = bridge
        self.world.emit("BridgeCreated", {"bridge": bridge.json()}, bridges=[bridge])
        return bridge

    def create_basic_bridge(self) -> Bridge:
        """ast_bridge_basic_new (main/bridge_basic.c), as ast_bridge_call makes for Dial():
        class "basic", no creator or name, video mode none, dissolved when a party leaves."""
        bridge = Bridge(id=str(uuid.uuid4()), name="", bridge_type="mixing",
                        creationtime=self.world.clock.epoch(), video_mode="none",
                        bridge_class="basic")
        bridge.settle_technology()
        self.world.bridges[bridge.id] = bridge
        self.world.emit("BridgeCreated", {"bridge": bridge.json()}, bridges=[bridge])
        return bridge

    def bridge_add(self, bridge: Bridge, ch: Channel) -> None:
        """Channel joins (leaving its previous bridge first, as ast_bridge_impart moves it)."""
        if ch.bridge_id == bridge.id:
            return
        if ch.bridge_id is not None:
            old = self.world.bridges.get(ch.bridge_id)
            if old is not None:
                self.bridge_remove(old, ch)
        if ch.stasis_app:
            bridge.subscribed_apps.add(ch.stasis_app)
        ch.bridge_id = bridge.id
        bridge.channels.append(ch.id)
        # The snapshot shows the technology from before the change (traces: simple_bridge).
        self.world.emit("ChannelEnteredBridge", {"bridge": bridge.json(), "channel": ch.json()},
                        channels=[ch], bridges=[bridge])
        bridge.settle_technology()

    def bridge_remove(self, bridge: Bridge, ch: Channel, swapping: bool = False) -> None:
        if ch.id not in bridge.channels:
            return
        bridge.channels.remove(ch.id)
        ch.bridge_id = None
        self.world.emit("ChannelLeftBridge", {"bridge": bridge.json(), "channel": ch.json()},
                        channels=[ch], bridges=[bridge])
        if swapping:
            return
        bridge.settle_technology()
        if not bridge.channels:
            # The lonely Recorder is kicked out: its recording ends now.
            self.world.bus.publish(BridgeEmptied(bridge))
        self.world.bus.publish(LeftBridge(bridge, ch))

    def bridge_swap(self, bridge: Bridge, ch: Channel, swap: Channel) -> None:
        """`ch` takes `swap`'s place (ast_bridge_impart with a swap channel, main/bridge.c
        bridge_do_move): ChannelLeftBridge of `swap`, then ChannelEnteredBridge of `ch`; the
        technology and the bridge's recordings are untouched (traces blind_transfer,
        sip_attended_transfer_refer: softmix before and after)."""
        self.bridge_remove(bridge, swap, swapping=True)
        self.bridge_add(bridge, ch)

    def bridge_peer(self, bridge: Bridge, ch: Channel) -> Channel | None:
        """main/bridge.c ast_bridge_peer: the other channel of a two-channel bridge; None with
        more (a recording's Recorder counts: traces blind_transfer, sip_attended_transfer_*)."""
        if len(bridge.channels) + len(bridge.recorder_ids) != 2 or ch.id not in bridge.channels:
            return None
        others = [c for c in bridge.channels if c != ch.id]
        return self.world.channels.get(others[0]) if others else None

    def destroy_bridge(self, bridge: Bridge) -> None:
        """DELETE /bridges: channels leave (they stay in Stasis), recordings end, then
        BridgeDestroyed."""
        for cid in list(bridge.channels):
            self.bridge_remove(bridge, self.world.channels[cid])
        self.world.bus.publish(BridgeDestroying(bridge))
        bridge.destroyed = True
        bridge.settle_technology()
        self.world.emit("BridgeDestroyed", {"bridge": bridge.json()}, bridges=[bridge])
