"""Hold and blind transfers of a party in a Stasis bridge, as Asterisk 22 performs them (and,
at the end of this docstring, in a basic bridge of a call the dialplan keeps).

Hold: a phone putting its call on hold (re-INVITE sendonly) makes chan_pjsip call main/channel.c
ast_queue_hold → ChannelHold (`musicclass` only when one was given), and resuming ast_queue_unhold
→ ChannelUnhold. The held phone sends no audio; the hold frame makes the other parties hear music
on hold played to them, never into the bridge, so a bridge recording with two parties goes on
(silence from the held side). POST /channels/{id}/hold is different: it only indicates hold to
the channel (res/stasis/control.c app_control_hold → ast_indicate) and publishes nothing.

Blind transfer (SIP REFER through res/res_pjsip_refer.c, or AMI BlindTransfer; both call
main/bridge.c ast_bridge_transfer_blind — l. 4634-4759 on the 22 branch — with is_external=1,
context = TRANSFER_CONTEXT or the endpoint's — `transfer-target` in the traced deployment):

* the transferer is taken off hold (l. 4698, main/bridge_channel.c
  ast_bridge_channel_write_unhold) → a ChannelUnhold without any ChannelHold before it (traces
  blind_transfer, sip_blind_transfer_refer);
* set_transfer_variables_all sets BLINDTRANSFER on every channel of the bridge;
* Stasis bridges carry AST_BRIDGE_FLAG_TRANSFER_BRIDGE_ONLY (res/res_stasis.c l. 833-835), so
  blind_transfer_bridge (l. 4320-4373) always runs: a `Local/<exten>@<context>` pair is requested
  and called; `;1` is imparted into the bridge with the transferer as swap channel.
  res/stasis/stasis_bridge.c bridge_stasis_push_peek copies the transferer's app and snapshot onto
  `;1`, and bridge_stasis_run_cb runs Stasis(<app>) on it: StasisStart with no args and
  `replace_channel` = the transferer, then ChannelLeftBridge (transferer) and ChannelEnteredBridge
  (`;1`, state Down). `;2` runs the dialplan at exten@context — Stasis(verbatim,transfer,<exten>)
  here — and enters the app with args ["transfer", exten] like a new call;
* BridgeBlindTransfer (main/stasis_bridges.c blind_transfer_to_json): `channel` and `bridge` are
  snapshots taken before anything moved, `replace_channel` is `;1` as created (Down, no app),
  `transferee` only when the bridge held exactly two channels (ast_bridge_peer: a recording's
  Recorder counts, so it is absent in both traces), `is_external` true;
* the order differs between the traces (threads race): AMI gives `;1`'s swap, BridgeBlindTransfer,
  then `;2`'s StasisStart; REFER gives `;2`'s StasisStart first. `via` reproduces each;
* the transferer leaves the bridge but stays in Stasis; the StasisStart that replaced it dropped
  one reference of the app's subscription (see channels.py unsubscribe_replaced). A SIP phone hangs
  up after the NOTIFY 200: ChannelHangupRequest cause 16, StasisEnd (sipp waited 200 ms);
* the bridge and its recording go on with `;1` in it: `;1` passes through what `;2` hears (see
  media.py), so once the app bridges `;2` with the new party, the call bridge's recording holds it;
* results: no bridge → "Invalid" (no `bridge`); a lone channel → "Invalid"; the extension missing
  from the dialplan → core_local.c local_call fails, the Local pair is hung up unseen, "Fail" with
  `replace_channel`; the transferer stays bridged in both.

A basic bridge (Dial(), appdial.py) has no TRANSFER_BRIDGE_ONLY flag, so a two-party one takes
ast_bridge_transfer_blind's direct path (`_blind_transfer_basic`): ChannelUnhold, BLINDTRANSFER
on both, (REFER: SIPTRANSFER and SIPREFERRINGCONTEXT on the transferee), BridgeBlindTransfer
(Success, `transferee`, no `replace_channel`), the transferee leaves (async goto) and runs
exten@context from priority 1 on the same channel, the transferer leaves, BridgeDestroyed; the
transferer is then hung up by Asterisk at once (no ChannelHangupRequest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .bridges import Bridging
from .channels import ChannelLife
from .model import CAUSE_NORMAL, Bridge, Channel
from .world import World

Via = Literal["refer", "ami"]
# A sipp phone sent BYE 200 ms after the NOTIFY 200 (trace sip_blind_transfer_refer: 3.040 → 3.248)
REFER_BYE_DELAY = 0.208


@dataclass
class TransferOutcome:
    """What a transfer did: Asterisk's result string and the Local pair it created."""

    result: str
    local_one: str | None = None
    local_two: str | None = None

    def json(self) -> dict[str, Any]:
        return {"result": self.result, "local_one": self.local_one, "local_two": self.local_two}


class DialplanRunner(Protocol):
    """The dialplan part as transfers see it: the `;2` half runs exten@context, a REFER's
    callback sets variables on the transferee."""

    def run_dialplan(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None: ...

    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None: ...


class Transfers:
    """Hold and blind transfers on one World (attended ones: attended.py)."""

    def __init__(self, world: World, life: ChannelLife, bridging: Bridging,
                 dialplan: DialplanRunner) -> None:
        self.world = world
        self.life = life
        self.bridging = bridging
        self.runner = dialplan

    # ------------------------------------------------------------------ hold
    def party_hold(self, ch: Channel, musicclass: str | None = None) -> None:
        """The phone puts the call on hold: ChannelHold; it sends no audio until resumed."""
        ch.on_hold = True
        fields = {"musicclass": musicclass} if musicclass else {}
        self.world.emit_channel("ChannelHold", ch, **fields)

    def party_unhold(self, ch: Channel) -> None:
        """ChannelUnhold (also what ast_bridge_channel_write_unhold publishes at a transfer,
        whether or not the channel was held)."""
        ch.on_hold = False
        self.world.emit_channel("ChannelUnhold", ch)

    # --------------------------------------------------------------- helpers
    def transfer_variables(self, transferer: Channel, bridge: Bridge, variable: str) -> None:
        """main/bridge.c set_transfer_variables_all: the transferer gets its bridge peers'
        names, every other channel the transferer's name."""
        for cid in list(bridge.channels):
            ch = self.world.channels[cid]
            if ch is transferer:
                names = [self.world.channels[c].name for c in bridge.channels if c != cid]
                names += [r.recorder_name for r in self.world.recordings.values()
                          if r.kind == "bridge" and r.target_id == bridge.id]
                self.life.set_variable(ch, variable, ",".join(names))
            else:
                self.life.set_variable(ch, variable, transferer.name)

    def bye_after_refer(self, ch: Channel, delay: float | None) -> None:
        """The phone that sent the REFER hangs up once told it worked (BYE, cause 16)."""
        if delay is None:
            return
        self.world.schedule(delay, lambda: self.life.hangup_channel(ch, CAUSE_NORMAL),
                            f"bye after REFER {ch.name}", owner=ch)

    def run_transfer_dialplan(self, ch: Channel) -> None:
        """The `;2` half runs exten@context from priority 1 (main/core_local.c local_call)."""
        self.runner.run_dialplan(ch, ch.dialplan.context, ch.dialplan.exten, 1)

    def hang_up_unseen(self, *channels: Channel) -> None:
        for ch in channels:
            ch.peer_id = None
            self.life.hangup_channel(ch, CAUSE_NORMAL, quiet=True)

    # ---------------------------------------------------------- blind transfer
    def blind_transfer_channel(self, transferer: Channel, exten: str, context: str,
                               via: Via = "refer",
                               hangup_after: float | None = REFER_BYE_DELAY) -> TransferOutcome:
        """ast_bridge_transfer_blind of `transferer` to exten@context (see the module doc).
        `hangup_after`: seconds until the SIP transferer's BYE (REFER only; None: it stays)."""
        snapshot = transferer.json()
        bridge = self.world.find_bridge(transferer.bridge_id or "")
        if bridge is None:
            self._publish_blind(snapshot, exten, context, "Invalid", transferer)
            return TransferOutcome("Invalid")
        if bridge.bridge_class == "basic":
            return self._blind_transfer_basic(transferer, bridge, exten, context, via,
                                              hangup_after, snapshot)
        bridge_snapshot = bridge.json()
        transferee = self.bridging.bridge_peer(bridge, transferer)
        extra: dict[str, Any] = {"transferee": transferee.json()} if transferee else {}
        self.party_unhold(transferer)
        if len(bridge.channels) + len(bridge.recorder_ids) <= 1:
            self._publish_blind(snapshot, exten, context, "Invalid", transferer, bridge,
                                bridge=bridge_snapshot, **extra)
            return TransferOutcome("Invalid")
        self.transfer_variables(transferer, bridge, "BLINDTRANSFER")
        one, two = self.life.new_local_pair(f"{exten}@{context}")
        extra["replace_channel"] = one.json()
        one.variables["BLINDTRANSFER"] = transferer.name
        app = transferer.stasis_app
        if app is None or self.world.dialplan.lookup(context, exten) is None:
            self.hang_up_unseen(one, two)
            self._publish_blind(snapshot, exten, context, "Fail", transferer, bridge,
                                bridge=bridge_snapshot, **extra)
            return TransferOutcome("Fail")
        if via == "refer":
            self.run_transfer_dialplan(two)
        if self.life.enter_stasis(one, app, [], replace=transferer):
            self.bridging.bridge_swap(bridge, one, transferer)
        else:  # bridge_stasis_run_cb: Stasis() failed, the deferred swap never runs
            self.life.hangup_channel(one, CAUSE_NORMAL)
        self._publish_blind(snapshot, exten, context, "Success", transferer, bridge,
                            bridge=bridge_snapshot, **extra)
        if via == "ami":
            self.run_transfer_dialplan(two)
        if via == "refer":
            self.bye_after_refer(transferer, hangup_after)
        return TransferOutcome("Success", one.id, two.id)

    def _blind_transfer_basic(self, transferer: Channel, bridge: Bridge, exten: str,
                              context: str, via: Via, hangup_after: float | None,
                              snapshot: dict[str, Any]) -> TransferOutcome:
        """ast_bridge_transfer_blind in a two-party basic bridge (a Dial() bridge): no Local
        channel; bridge_channel_internal_queue_blind_transfer makes the transferee leave and run
        exten@context from priority 1 (ast_async_goto; a REFER's callback sets SIPTRANSFER and
        SIPREFERRINGCONTEXT on it first), ast_bridge_remove takes the transferer out, and the
        bridge dissolves. The transferer, out of its bridge, is hung up at once by
        Asterisk (its Dial() returns -1 / an imparted channel has no goto; see appdial.py) — the
        phone's BYE after the NOTIFY finds it gone. res_pjsip_refer refuses a REFER to an
        extension that does not exist (404: nothing happens); AMI goes ahead."""
        if via == "refer" and self.world.dialplan.lookup(context, exten) is None:
            return TransferOutcome("Fail")
        bridge_snapshot = bridge.json()
        transferee = self.bridging.bridge_peer(bridge, transferer)
        extra: dict[str, Any] = {"transferee": transferee.json()} if transferee else {}
        self.party_unhold(transferer)
        if len(bridge.channels) <= 1:
            self._publish_blind(snapshot, exten, context, "Invalid", transferer, bridge,
                                bridge=bridge_snapshot, **extra)
            return TransferOutcome("Invalid")
        self.transfer_variables(transferer, bridge, "BLINDTRANSFER")
        if transferee is None:  # more than two parties: not a Dial() bridge, not simulated
            self._publish_blind(snapshot, exten, context, "Fail", transferer, bridge,
                                bridge=bridge_snapshot, **extra)
            return TransferOutcome("Fail")
        if via == "refer":  # res_pjsip_refer.c refer_blind_callback on the transferee
            self.runner.dp_set_variable(transferee, "SIPTRANSFER", "yes")
            self.runner.dp_set_variable(transferee, "SIPREFERRINGCONTEXT", context)
        self._publish_blind(snapshot, exten, context, "Success", transferer, bridge,
                            bridge=bridge_snapshot, **extra)
        transferee.pending_goto = (context, exten)
        self.bridging.bridge_remove(bridge, transferee)
        if via == "refer":  # moot unless the transferer's Dial() had the `g` option
            self.bye_after_refer(transferer, hangup_after)
        return TransferOutcome("Success")

    def _publish_blind(self, snapshot: dict[str, Any], exten: str, context: str, result: str,
                       transferer: Channel, in_bridge: Bridge | None = None,
                       **extra: Any) -> None:
        """BridgeBlindTransfer, to apps subscribed to the transferer or to the bridge or one
        of its channels (res/stasis/app.c bridge_blind_transfer_handler)."""
        fields: dict[str, Any] = {"channel": snapshot, "exten": exten, "context": context,
                                  "result": result, "is_external": True}
        for key in ("transferee", "replace_channel", "bridge"):
            if key in extra:
                fields[key] = extra[key]
        involved = [self.world.channels[c] for c in in_bridge.channels] if in_bridge else []
        self.world.emit("BridgeBlindTransfer", fields, channels=[transferer, *involved],
                        bridges=[in_bridge] if in_bridge else [])
