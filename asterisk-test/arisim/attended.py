"""Attended transfers (SIP REFER with Replaces) between two calls of the transferer's phone.

res/res_pjsip_refer.c hands the leg the REFER came on (`first`, bridged with the transferee) and
the leg its Replaces names (`second`, the consultation call) to main/bridge.c
ast_bridge_transfer_attended. What follows, per that function and the traces:

* both legs are taken off hold (ast_bridge_channel_write_unhold: ChannelUnhold on each bridged
  leg, no ChannelHold needed) and ATTENDEDTRANSFER is set on the first bridge's channels
  (set_transfer_variables_all); a `Local/_attended@transfer` pair is requested at once
  (attended_transfer_bridge) and the rest came about 0.5 s later in both traces (`delay`);
* both legs in Dial() bridges (hook mode; `destination_type: bridge`, trace
  observed/hook_mode_attended_transfer_refer): the transferee is swapped into the consultation
  bridge in the consultation leg's place, no Local pair (_swap_attended);
* both legs bridged (`destination_type: link`, trace sip_attended_transfer_refer): Stasis bridges
  inhibit merges and swaps (res/res_stasis.c: MERGE_INHIBIT_*, SWAP_INHIBIT_*), so
  two_bridge_attended_transfer links them: ast_local_setup_bridge puts `;2` (Up) into the second
  bridge in the consultation leg's place and `;1` (Down) is imparted into the first bridge in the
  first leg's place — each a StasisStart with no args and `replace_channel`, then LeftBridge/
  EnteredBridge; `;1` reads the answer (ChannelStateChange Up, Dial ANSWER); the consultation leg
  is soft-hung-up (ast_softhangup AST_SOFTHANGUP_DEV: cause 1, soft) — its StasisEnd; then
  BridgeAttendedTransfer with both bridge snapshots and `destination_link_first_leg`/
  `_second_leg`. Both bridges, and their recordings, go on, linked by the Local pair (media.py);
* one leg unbridged but in the app (`destination_type: application`, trace
  sip_attended_transfer_unbridged): ast_local_setup_masquerade makes `;2` take the unbridged leg's
  place (res_stasis.c channel_replaced_cb: StasisStart for `;2` with its pre-masquerade snapshot and
  `replace_channel`, StasisEnd for the leg, then `;2` shows the leg's dialplan location and
  creationtime: ChannelDialplan), and `;1` replaces the bridged leg; BridgeAttendedTransfer carries
  `replace_channel` = `;1`, `destination_application` = the leg's dialplan application ("Stasis"),
  and only the bridged leg's bridge; then `;1` goes Up. The app must connect `;2` onwards;
* `is_external` is always false: ast_attended_transfer_message_create (main/stasis_bridges.c
  l. 1274-1328) never stores its is_external argument; `transferee`/`transfer_target` only
  for two-channel bridges (ast_bridge_peer — a recording's Recorder counts);
* after success the phone hangs up the first leg (BYE: ChannelHangupRequest cause 16, StasisEnd —
  1 ms after in the trace);
* `result="fail"` (not captured; main/bridge.c of the 22 branch): the Local channel could not be
  set up or a leg hung up meanwhile (attended_transfer_bridge, l. 4430-4533, returns
  AST_BRIDGE_TRANSFER_FAIL, e.g. l. 4513 "Transfer failed probably due to an early hangup") — the
  `end:` label of ast_bridge_transfer_attended (l. 5061-5068) soft-hangs-up the consultation leg
  (`to_transfer_target`, AST_SOFTHANGUP_DEV) and publishes result "Fail"; the message's dest_type
  stays AST_ATTENDED_TRANSFER_DEST_FAIL (0, include/asterisk/stasis_bridges.h) → `destination_type:
  "fail"`. Nothing moves, the first leg stays bridged (the phone keeps it). Both legs unbridged →
  "Invalid" (l. 4916-4920), published without unhold or hangup;
* an abandoned transfer never reaches Asterisk as a transfer: the phone hangs up the
  consultation call and resumes the first (res_pjsip_refer.c only acts on a REFER), so there is
  no BridgeAttendedTransfer — just the consultation leg's hangup and, if it was held, the first
  leg's ChannelUnhold (see Engine.abandon_transfer).
"""

from __future__ import annotations

from typing import Any, Literal

from .bridges import Bridging
from .channels import ChannelLife, FarEnd
from .model import CAUSE_NORMAL, Bridge, Channel
from .transfers import TransferOutcome, Transfers
from .world import World

# The traced REFERs: ChannelUnhold, then 0.502 s until the Local channels joined.
ATTENDED_SETUP_DELAY = 0.502
# pjsua sent BYE on the first leg right after the NOTIFY (trace: 11.462 → 11.463).
ATTENDED_BYE_DELAY = 0.001
SOFTHANGUP_DEV = 1  # AST_SOFTHANGUP_DEV
AttendedResult = Literal["success", "fail"]


class AttendedTransfers:
    """Attended transfers on one World; hold and the helpers shared with blind transfers are
    the Transfers part's, answering the Local pair's far half is the dialling part's."""

    def __init__(self, world: World, life: ChannelLife, bridging: Bridging,
                 transfers: Transfers, far_end: FarEnd) -> None:
        self.world = world
        self.life = life
        self.bridging = bridging
        self.transfers = transfers
        self.far_end = far_end

    def attended_transfer_channels(
        self, first: Channel, second: Channel, *, result: AttendedResult = "success",
        delay: float = ATTENDED_SETUP_DELAY, hangup_after: float | None = ATTENDED_BYE_DELAY,
    ) -> TransferOutcome:
        """ast_bridge_transfer_attended(first, second); see the module docstring. The work after
        the ChannelUnholds runs `delay` virtual seconds later; the outcome returned names the
        Local pair (its result is what Asterisk will publish unless a leg goes away meanwhile)."""
        b1 = self.world.find_bridge(first.bridge_id or "")
        b2 = self.world.find_bridge(second.bridge_id or "")
        base = self._attended_base(first, second, b1, b2)
        if b1 is None and b2 is None:
            self._publish_attended(base, "Invalid", "fail", first, second, b1, b2)
            return TransferOutcome("Invalid")
        for leg, bridge in ((first, b1), (second, b2)):
            if bridge is not None:
                self.transfers.party_unhold(leg)
        anchor = b1 if b1 is not None else b2
        assert anchor is not None
        transferer = first if b1 is not None else second
        self.transfers.transfer_variables(transferer, anchor, "ATTENDEDTRANSFER")
        if result == "fail":
            self.life.hangup_channel(second, CAUSE_NORMAL, soft=True, soft_flag=SOFTHANGUP_DEV)
            self._publish_attended(base, "Fail", "fail", first, second, b1, b2)
            return TransferOutcome("Fail")
        if (b1 is not None and b2 is not None and b1.bridge_class == b2.bridge_class == "basic"
                and len(b1.channels) == 2):
            self._swap_attended(base, first, second, b1, b2)
            return TransferOutcome("Success")
        one, two = self.life.new_local_pair("_attended@transfer")
        one.variables["ATTENDEDTRANSFER"] = first.name

        def finish() -> None:
            self._finish_attended(base, first, second, b1, b2, one, two, hangup_after)

        self.world.schedule(delay, finish, f"attended transfer {first.name}")
        return TransferOutcome("Success", one.id, two.id)

    # ----------------------------------------------------------------- work
    def _finish_attended(self, base: dict[str, Any], first: Channel, second: Channel,
                         b1: Bridge | None, b2: Bridge | None, one: Channel, two: Channel,
                         hangup_after: float | None) -> None:
        gone = [leg for leg in (first, second) if leg.hungup or leg.destroyed]
        moved = (b1 is not None and first.bridge_id != b1.id) or (
            b2 is not None and second.bridge_id != b2.id)
        if gone or moved:
            # attended_transfer_bridge: "Transfer failed probably due to an early hangup"
            self.transfers.hang_up_unseen(one, two)
            if not (second.hungup or second.destroyed):
                self.life.hangup_channel(second, CAUSE_NORMAL, soft=True, soft_flag=SOFTHANGUP_DEV)
            self._publish_attended(base, "Fail", "fail", first, second, b1, b2)
            return
        if b1 is not None and b2 is not None:
            self._link(base, first, second, b1, b2, one, two)
            self.transfers.bye_after_refer(first, hangup_after)
            return
        bridged, unbridged, bridge = (first, second, b1) if b1 is not None else (second, first, b2)
        assert bridge is not None
        app_name = unbridged.dialplan.app_name or "unknown"
        if unbridged.stasis_app is None:
            self.transfers.hang_up_unseen(one, two)
            self._publish_attended(base, "Fail", "fail", first, second, b1, b2)
            return
        self._masquerade(two, unbridged)
        app = bridged.stasis_app or unbridged.stasis_app
        if self.life.enter_stasis(one, app, [], replace=bridged):
            self.bridging.bridge_swap(bridge, one, bridged)
        self._publish_attended(base, "Success", "application", first, second, b1, b2,
                               replace_channel=one.json(), destination_application=app_name)
        self.far_end.far_answered(one)
        if bridged is first:
            self.transfers.bye_after_refer(first, hangup_after)
        else:  # hangup_target: the consultation leg was the bridged one
            self.life.hangup_channel(second, CAUSE_NORMAL, soft=True, soft_flag=SOFTHANGUP_DEV)

    def _link(self, base: dict[str, Any], first: Channel, second: Channel, b1: Bridge,
              b2: Bridge, one: Channel, two: Channel) -> None:
        two.state = "Up"
        if second.stasis_app and self.life.enter_stasis(two, second.stasis_app, [], replace=second):
            self.bridging.bridge_swap(b2, two, second)
        if first.stasis_app and self.life.enter_stasis(one, first.stasis_app, [], replace=first):
            self.bridging.bridge_swap(b1, one, first)
        self.far_end.far_answered(one)
        self.life.hangup_channel(second, CAUSE_NORMAL, soft=True, soft_flag=SOFTHANGUP_DEV)
        self._publish_attended(base, "Success", "link", first, second, b1, b2,
                               destination_link_first_leg=one.json(),
                               destination_link_second_leg=two.json())

    def _swap_attended(self, base: dict[str, Any], first: Channel, second: Channel,
                       b1: Bridge, b2: Bridge) -> None:
        """Two Dial() bridges (hook mode): main/bridge.c two_bridge_attended_transfer may
        optimise, ast_bridges_allow_optimization → bridges_allow_swap_optimization: with two
        parties in the first bridge (equal merge priorities) it swaps to the peer bridge (the
        other shapes, a merge or a swap the other way, are not simulated).
        bridge_swap_attended_transfer moves the transferee into the consultation bridge in the
        consultation leg's place (bridge_do_move with a swap channel) and kicks the first leg
        out of its bridge (END_NO_DISSOLVE); then `end:` soft-hangs-up the consultation leg
        (AST_SOFTHANGUP_DEV) and publishes destination_type "bridge" with the final bridge. As
        traced (observed/hook_mode_attended_transfer_refer): LeftBridge of the transferee, of
        the consultation leg, EnteredBridge of the transferee, ChannelHangupRequest (1, soft),
        BridgeAttendedTransfer, ChannelHangupRequest (16, soft) of the consultation leg, then
        the first leg leaves its bridge (destroyed) and, its part of the Dial() over, is hung
        up."""
        transferee = self.bridging.bridge_peer(b1, first)
        assert transferee is not None
        self.bridging.bridge_remove(b1, transferee, swapping=True)
        self.bridging.bridge_swap(b2, transferee, second)
        self.world.emit_channel("ChannelHangupRequest", second, cause=SOFTHANGUP_DEV, soft=True)
        self._publish_attended(base, "Success", "bridge", first, second, b1, b2,
                               destination_bridge=b2.id)
        self.life.hangup_channel(second, CAUSE_NORMAL, soft=True, soft_flag=CAUSE_NORMAL)
        if first.bridge_id == b1.id:
            self.bridging.bridge_remove(b1, first)  # the bridge dissolves; its Dial() hangs it up

    def _masquerade(self, two: Channel, leg: Channel) -> None:
        """`;2` takes `leg`'s place in Stasis (res_stasis.c channel_replaced_cb)."""
        app = leg.stasis_app
        assert app is not None
        two.state = leg.state
        two.stasis_app, two.stasis_args = app, list(leg.stasis_args)
        self.life.unsubscribe_replaced(leg, app)
        self.world.emit("StasisStart", {"args": [], "channel": two.json(),
                                        "replace_channel": leg.json()}, channels=[two])
        self.life.leave_stasis(leg)
        self.life.hangup_channel(leg, CAUSE_NORMAL, quiet=True)
        loc = leg.dialplan
        two.dialplan.context, two.dialplan.exten = loc.context, loc.exten
        two.dialplan.priority = loc.priority
        two.creationtime = leg.creationtime
        two.tone_hz = None
        self.life.set_dialplan_app(two, "Stasis", ",".join([app, *two.stasis_args]))

    # -------------------------------------------------------------- publish
    def _attended_base(self, first: Channel, second: Channel, b1: Bridge | None,
                       b2: Bridge | None) -> dict[str, Any]:
        """The snapshots ast_attended_transfer_message_create takes before anything moves."""
        base: dict[str, Any] = {"transferer_first_leg": first.json(),
                                "transferer_second_leg": second.json()}
        transferee = self.bridging.bridge_peer(b1, first) if b1 is not None else None
        target = self.bridging.bridge_peer(b2, second) if b2 is not None else None
        if transferee is not None:
            base["transferee"] = transferee.json()
        if target is not None:
            base["transfer_target"] = target.json()
        if b1 is not None:
            base["transferer_first_leg_bridge"] = b1.json()
        if b2 is not None:
            base["transferer_second_leg_bridge"] = b2.json()
        return base

    def _publish_attended(self, base: dict[str, Any], result: str, destination: str,
                          first: Channel, second: Channel, b1: Bridge | None,
                          b2: Bridge | None, **dest: Any) -> None:
        """BridgeAttendedTransfer (main/stasis_bridges.c attended_transfer_to_json), to apps
        subscribed to either leg, either bridge or one of their channels, or a link channel
        (res/stasis/app.c bridge_attended_transfer_handler)."""
        fields: dict[str, Any] = {
            "transferer_first_leg": base["transferer_first_leg"],
            "transferer_second_leg": base["transferer_second_leg"],
            "result": result, "is_external": False}
        for key in ("transferee", "transfer_target", "transferer_first_leg_bridge",
                    "transferer_second_leg_bridge"):
            if key in base:
                fields[key] = base[key]
        if "replace_channel" in dest:
            fields["replace_channel"] = dest.pop("replace_channel")
        fields["destination_type"] = destination
        fields.update(dest)
        involved = [self.world.channels[c] for b in (b1, b2) if b is not None for c in b.channels]
        links = [self.world.channels[c["id"]] for k, c in dest.items()
                 if k.startswith("destination_link")]
        self.world.emit("BridgeAttendedTransfer", fields,
                        channels=[first, second, *involved, *links],
                        bridges=[b for b in (b1, b2) if b is not None])
