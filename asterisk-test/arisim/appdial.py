"""Dial() in the dialplan, the basic bridges it makes, and DTMF features (hook mode).

Dial(TECH/res[&TECH/res...][,timeout[,options]]) as apps/app_dial.c dial_exec_full runs it for a
channel outside Stasis:

* DIALSTATUS is set to "" first; each destination is requested (PJSIP or Local; ChannelCreated),
  gets DIALEDPEERNUMBER, the caller's inheritable variables ("_X" once, "__X" always), caller id
  (number = the caller's extension: stored_clid), connected line (the caller's caller id), the
  caller's extension, and "AppDial"/"(Outgoing Line)" (a ChannelDialplan), then is called: a Dial
  event with `caller`, `peer`, dialstatus "" and the number as `dialstring`;
* the far end behaves as for ARI-dialled channels (dialplan.EndpointBehaviour, Local dialplans):
  Dial RINGING / BUSY / CONGESTION with `caller`; a destination that hangs up gives the Dial of
  ast_hangup_cause_to_dial_status; when all failed, DIALSTATUS is BUSY, CONGESTION or
  CHANUNAVAIL if every line failed that way, else NOANSWER, and the dialplan goes on;
* timeout (seconds): Dial NOANSWER for each line still ringing, which is hung up (cause 0), and
  the dialplan goes on with DIALSTATUS NOANSWER; the caller hanging up gives Dial CANCEL and
  DIALSTATUS CANCEL;
* on answer (wait_for_answer): Dial CANCEL to the other lines (hung up, cause 26), DIALSTATUS
  ANSWER, DIALEDPEERNAME, DIALEDPEERNUMBER; U(context[^arg...]) runs context's `s` extension on
  the called channel (a Gosub: ARGn variables, until Return() or the end — AGI() included) while
  the caller waits — hearing (Channel.waiting_hears) music on hold with `m`, ringing with `r` or
  once a called line rang (passed on; the core plays it in-band to an answered caller), else
  silence: the tone goes on through the routine and stops only just before the bridge; then
  Dial ANSWER, and ast_bridge_call: the caller is answered if it was not,
  a new basic bridge (BridgeCreated, class "basic", creator "", name ""), the called channel enters
  first (imparted), then the caller;
* when a party leaves a basic bridge (hangup, transfer) the bridge dissolves
  (AST_BRIDGE_FLAG_DISSOLVE_HANGUP): the other party is kicked, BridgeDestroyed; the called
  channel is hung up (ast_bridge_run_after_goto finds no goto: ast_hangup, no
  ChannelHangupRequest), the caller's Dial returns — DIALSTATUS set again — and without the `g`
  option its PBX ends (hung up), with `g` its dialplan goes on. A channel given an async goto
  (blind transfer, transfers.py) runs that extension from priority 1 instead, on the same channel.

DTMF features (main/features_config.c applicationmap, main/bridge_basic.c dynamic hooks): a
channel entering a basic bridge arms the applicationmap items its DYNAMIC_FEATURES variable names
("a#b"); its DTMF is collected (1 s between digits, featuredigittimeout) and a full code runs the
item's application on the channel itself ("self") or on the other parties ("peer"), each with
DYNAMIC_FEATURENAME and DYNAMIC_WHO_ACTIVATED set, while its bridge channel is suspended: it stays
in the bridge (no ChannelLeftBridge) but sends and hears nothing there until the application
returns.
"""

from __future__ import annotations

from collections.abc import Callable

from .agi import Agi
from .bridges import Bridging
from .bus import LeftBridge
from .channels import ChannelLife
from .dialing import Dialling, hangup_dial_status
from .dialplan import Feature, parse_app_call, parse_options, split_app_args
from .forwards import REDIRECTED
from .model import (
    CAUSE_BUSY,
    CAUSE_CONGESTION,
    CAUSE_NORMAL,
    Bridge,
    CallerId,
    Channel,
    DialRun,
)
from .pbx import Pbx
from .world import World

ANSWERED_ELSEWHERE = 26  # AST_CAUSE_ANSWERED_ELSEWHERE: hanguptree for the losing lines
FEATURE_DIGIT_TIMEOUT = 1.0  # features.conf featuredigittimeout (1000 ms)
DIAL_TECHS = {"PJSIP", "SIP", "IAX2", "DAHDI"}


class DialApp:
    """Dial() and the applicationmap's DTMF features on one World; it dials through the
    Dialling part, runs U() routines on the Pbx and features' AGI() on the Agi part, and hears
    `LeftBridge` (a basic bridge dissolves)."""

    def __init__(self, world: World, life: ChannelLife, bridging: Bridging, dialling: Dialling,
                 pbx: Pbx, agi: Agi) -> None:
        self.world = world
        self.life = life
        self.bridging = bridging
        self.dialling = dialling
        self.pbx = pbx
        self.agi = agi
        world.bus.subscribe(LeftBridge, self.basic_bridge_left)

    # ----------------------------------------------------------------- Dial()
    def start_dial(self, ch: Channel, data: str) -> None:
        args = split_app_args(data)
        targets = [t.strip() for t in (args[0] if args else "").split("&") if t.strip()]
        options = parse_options(args[2]) if len(args) > 2 else {}
        run = DialRun(caller_id=ch.id, data=data, options=options)
        ch.dial_run = run
        # m: music on hold, r: ringing, from the start until the bridge
        ch.waiting_hears = "moh" if "m" in options else "ringing" if "r" in options else None
        self.pbx.dp_set_variable(ch, "DIALSTATUS", "")
        callees = []
        for target in targets:
            run.requested += 1
            callee = self._dial_request(ch, run, target)
            if callee is None:
                run.nochan += 1  # ast_request failed
            else:
                callees.append(callee)
        for callee in callees:
            other = self.world.peer(callee)
            if other is not None and self.world.dialplan.behaviour_for(
                    callee.behaviour_key or "") is None and self.world.dialplan.lookup(
                    other.dialplan.context, other.dialplan.exten) is None:
                # core_local.c local_call: "No such extension/context" — ast_call fails
                run.nochan += 1
                callee.dialed_by = None
                callee.peer_id = other.peer_id = None
                self.life.hangup_channel(other, 0, quiet=True)
                self.life.hangup_channel(callee, 0, quiet=True)
                continue
            run.going.append(callee.id)
            self.dialling.dial_event(callee, "", dialstring=run.dialstrings[callee.id])
            # ast_call: the phone is INVITEd / the Local ";2" PBX starts in its own thread
            self.world.schedule(0, self._far_starter(callee), f"call {callee.name}")
        if not run.going and run.peer_id is None and not run.done:
            run.status = "CHANUNAVAIL"
            self._dial_over(run, continue_dialplan=True)
            return
        timeout = args[1].strip() if len(args) > 1 else ""
        try:
            seconds = float(timeout.split("^")[0]) if timeout else 0.0
        except ValueError:
            seconds = 0.0
        if seconds > 0 and not run.done and run.peer_id is None:
            run.timer = self.world.schedule(seconds, lambda: self._dial_timeout_app(run),
                                            f"Dial timeout {ch.name}")

    def _far_starter(self, callee: Channel) -> Callable[[], None]:
        def start() -> None:
            if callee.dialed_by is not None and not (callee.hungup or callee.destroyed):
                self.dialling.start_far_end(callee)

        return start

    def _dial_request(self, caller: Channel, run: DialRun, target: str) -> Channel | None:
        tech, _, resource = target.partition("/")
        if tech == "Local":
            callee, _ = self.life.new_local_pair(resource)
        elif tech in DIAL_TECHS and resource:
            if self.world.dialplan.not_configured(target):
                return None  # ast_request failed: no such endpoint
            callee = self.life.new_tech_channel(tech, resource)
        else:
            self.world.warnings.append(
                f"Dial({run.data}) on {caller.name}: {target!r} not simulated")
            return None
        callee.dialed_by = run
        callee.dialing = True
        run.dialstrings[callee.id] = resource
        self.pbx.dp_set_variable(callee, "DIALEDPEERNUMBER", resource)
        for name, level in caller.inherit.items():  # ast_channel_inherit_variables
            callee.variables[name] = caller.variables.get(name, "")
            if level == 2:
                callee.inherit[name] = 2
        callee.caller = CallerId("", caller.dialplan.exten)
        callee.connected = CallerId(caller.caller.name, caller.caller.number)
        callee.dialplan.exten = caller.dialplan.exten
        self.life.set_dialplan_app(callee, "AppDial", "(Outgoing Line)")
        self.dialling.setup_far_party(callee)
        return callee

    def _dial_publish(self, run: DialRun, callee: Channel, status: str) -> None:
        caller = self.world.channels[run.caller_id]
        self.world.emit("Dial", {"caller": caller.json(), "peer": callee.json(),
                                 "dialstatus": status, "forward": "", "dialstring": ""},
                        channels=[caller, callee])

    def _dial_timeout_app(self, run: DialRun) -> None:
        if run.done or run.peer_id is not None:
            return
        run.status = "NOANSWER"
        self._drop_lines(run, "NOANSWER", 0)
        self._dial_over(run, continue_dialplan=True)

    def _drop_lines(self, run: DialRun, status: str, cause: int) -> None:
        """publish_dial_end_event to the lines still ringing, then hanguptree."""
        lines = [self.world.channels[c] for c in run.going]
        run.going.clear()
        for line in lines:
            run.reported[line.id] = status
            self._dial_publish(run, line, status)
        for line in lines:
            line.dialed_by = None
            line.dialing = False
            self.life.hangup_channel(line, cause, quiet=True)

    def _dial_over(self, run: DialRun, *, continue_dialplan: bool) -> None:
        """Dial() returns without a bridge: DIALSTATUS, then the dialplan's next step (after
        the lines' teardown, as app_dial continues once it hung them up)."""
        run.done = True
        if run.timer is not None:
            run.timer.cancel()
        caller = self.world.channels[run.caller_id]
        caller.waiting_hears = None
        if caller.dial_run is run:
            caller.dial_run = None
        if caller.hungup or caller.destroyed:
            return
        self.pbx.dp_set_variable(caller, "DIALSTATUS", run.status)
        if continue_dialplan:
            self.world.schedule(0, lambda: self.pbx.dp_continue(caller),
                                f"after Dial {caller.name}")

    def app_dial_busy(self, ch: Channel, status: str) -> None:
        """A line answered BUSY/CONGESTION (its Dial event is out): app_dial hangs it up."""
        run = ch.dialed_by
        if run is not None:
            run.reported[ch.id] = status
        self.dialling.far_fail(ch, CAUSE_BUSY if status == "BUSY" else CAUSE_CONGESTION)

    def app_dial_gone(self, ch: Channel) -> None:
        """A channel Dial() rings, or runs on, hangs up."""
        run = ch.dial_run
        if run is not None and not run.done and run.peer_id is None:
            # the caller gives up: Dial CANCEL to every line (hung up with its cause)
            run.status = "CANCEL"
            self._drop_lines(run, "CANCEL", ch.hangup_cause or CAUSE_NORMAL)
            run.done = True
            if run.timer is not None:
                run.timer.cancel()
            self.pbx.dp_set_variable(ch, "DIALSTATUS", "CANCEL")
        run = ch.dialed_by
        if run is None:
            return
        if run.peer_id == ch.id:
            # hung up while its U() routine runs: the routine ends (now, or when its AGI does)
            if ch.dp_return is not None and ch.agi is None:
                self.world.schedule(0, lambda: self.pbx.dp_abort(ch), f"Gosub abort {ch.name}")
            return
        if ch.id not in run.going:
            return
        run.going.remove(ch.id)
        status = run.reported.get(ch.id)
        if status is None:
            status = hangup_dial_status(ch.hangup_cause)
            self._dial_publish(run, ch, status)
        ch.dialed_by = None
        ch.dialing = False
        cause = {"BUSY": CAUSE_BUSY, "CONGESTION": CAUSE_CONGESTION, "FORWARD": CAUSE_NORMAL}.get(
            run.reported.get(ch.id, ""), ch.hangup_cause)
        if cause == CAUSE_BUSY:  # app_dial.c handle_cause
            run.busy += 1
        elif cause == CAUSE_CONGESTION:
            run.congestion += 1
        elif cause not in (CAUSE_NORMAL, 19):
            run.nochan += 1
        if not run.going and run.peer_id is None and not run.done:
            if run.busy + run.congestion + run.nochan == run.requested:
                run.status = ("BUSY" if run.busy else "CONGESTION" if run.congestion
                              else "CHANUNAVAIL")
            self._dial_over(run, continue_dialplan=True)

    def app_dial_forward(self, ch: Channel, target: str) -> None:
        """A line answered 302 (app_dial.c do_forward): chan_pjsip queues its hangup (cause 23,
        tech_cause 302); Dial() requests `Local/<target>@<FORWARD_CONTEXT or its context>` (or
        tech/resource) for the caller, publishes Dial CANCEL with `forward` and `forwarded`,
        calls the new line (Dial "") and hangs the original up. With the `i` option the forward
        is refused: Dial CANCEL with `forward`, then BUSY."""
        run = ch.dialed_by
        assert run is not None
        tech_cause = self.dialling.forwards.moved_temporarily(ch)
        ch.cancel_timers()
        caller = self.world.channels[run.caller_id]
        if "/" in target:
            tech, stuff = target.split("/", 1)
        else:
            context = ch.variables.get("FORWARD_CONTEXT") or ch.dialplan.context
            tech, stuff = "Local", f"{target}@{context}"
        new: Channel | None = None
        if "i" not in run.options:
            new = self._dial_request(caller, run, f"{tech}/{stuff}")
        if new is None:
            self._dial_forward_event(run, ch, target, None)
            self._dial_publish(run, ch, "BUSY")
            run.reported[ch.id] = "BUSY"
            self.life.hangup_channel(ch, REDIRECTED, tech_cause=tech_cause, quiet=True)
            return
        self.pbx.dp_set_variable(new, "FORWARDERNAME", ch.name)
        new.caller_rdnis = ch.caller_rdnis or caller.dialplan.exten
        other = self.world.peer(new)
        if other is not None and self.world.dialplan.lookup(other.dialplan.context,
                                                            other.dialplan.exten) is None:
            # ast_call fails: Dial CONGESTION for the original, both hung up
            self._dial_publish(run, ch, "CONGESTION")
            run.reported[ch.id] = "FORWARD"
            run.nochan += 1
            new.dialed_by = None
            new.peer_id = other.peer_id = None
            for gone in (other, new):
                self.life.hangup_channel(gone, 0, quiet=True)
            self.life.hangup_channel(ch, REDIRECTED, tech_cause=tech_cause, quiet=True)
            return
        self._dial_forward_event(run, ch, target, new)
        run.going.append(new.id)
        self.dialling.dial_event(new, "", dialstring=stuff)
        run.reported[ch.id] = "FORWARD"
        self.life.hangup_channel(ch, REDIRECTED, tech_cause=tech_cause, quiet=True)
        self.world.schedule(0, self._far_starter(new), f"call {new.name}")

    def _dial_forward_event(self, run: DialRun, ch: Channel, target: str,
                            new: Channel | None) -> None:
        caller = self.world.channels[run.caller_id]
        fields: dict[str, object] = {"caller": caller.json(), "peer": ch.json()}
        if new is not None:
            fields["forwarded"] = new.json()
        fields.update(dialstatus="CANCEL", forward=target, dialstring="")
        self.world.emit("Dial", fields, channels=[caller, ch, *([new] if new else [])])

    def app_dial_answered(self, ch: Channel) -> None:
        run = ch.dialed_by
        if run is None or run.done or run.peer_id is not None:
            return
        caller = self.world.channels[run.caller_id]
        run.peer_id = ch.id
        ch.dialing = False
        if run.timer is not None:
            run.timer.cancel()
        if ch.id in run.going:
            run.going.remove(ch.id)
        self._drop_lines(run, "CANCEL", ANSWERED_ELSEWHERE)
        run.status = "ANSWER"
        self.pbx.dp_set_variable(caller, "DIALSTATUS", "ANSWER")
        self.pbx.dp_set_variable(caller, "DIALEDPEERNAME", ch.name)
        self.pbx.dp_set_variable(caller, "DIALEDPEERNUMBER", run.dialstrings.get(ch.id, ""))
        announce = run.options.get("A", "").split(":", 1)[0]
        if announce:
            # A(called[:caller]): the called party hears the file once answered, before the U()
            # routine and the bridge (app_dial.c, OPT_ANNOUNCE; a missing file is only logged)
            self.world.dial_announcements.append((ch.name, announce))
            self.world.schedule(self.pbx.playback_length(announce),
                                lambda: self._dial_after_answer(run, ch), f"Dial A() {ch.name}")
            return
        self._dial_after_answer(run, ch)

    def _dial_after_answer(self, run: DialRun, ch: Channel) -> None:
        if run.done or ch.hungup:
            return
        sub = run.options.get("U")
        if sub:
            self._dial_gosub(run, ch, sub)
        else:
            self._dial_bridge(run)

    def _dial_gosub(self, run: DialRun, peer: Channel, sub: str) -> None:
        """U(context[^arg^...]): Gosub(context,s,1(args)) on the called channel."""
        context, *sub_args = sub.split("^")
        steps = self.world.dialplan.lookup(context, "s")
        if steps is None:
            self.world.warnings.append(f"Dial U({sub}): no extension s in {context!r}")
            self._dial_bridge(run)
            return
        loc = peer.dialplan
        peer.dp_saved = (loc.context, loc.exten, loc.priority, loc.app_name, loc.app_data)
        for i, value in enumerate(sub_args, 1):
            self.pbx.dp_set_variable(peer, f"ARG{i}", value)
        loc.context, loc.exten = context, "s"
        peer.dp_steps, peer.dp_index = steps, 0
        peer.dp_return = lambda: self._dial_gosub_returned(run)
        self.pbx.dp_continue(peer)

    def _dial_gosub_returned(self, run: DialRun) -> None:
        """The U() routine returned. GOSUB_RESULT on the called channel (app_dial.c): BUSY,
        CONGESTION, CHANUNAVAIL (that DIALSTATUS) and CONTINUE hang it up and the caller's
        dialplan goes on; ABORT hangs it up and the caller's Dial returns -1 (its PBX ends
        unless `g`); GOTO:context^exten^priority goes on there. Each is published as the Dial
        status instead of ANSWER."""
        peer = self.world.channels[run.peer_id or ""]
        peer.dp_unwinding = False
        if peer.dp_saved is not None and not peer.destroyed:
            loc = peer.dialplan
            loc.context, loc.exten, loc.priority, loc.app_name, loc.app_data = peer.dp_saved
        peer.dp_saved = None
        peer.dp_steps, peer.dp_index = [], 0
        result = peer.variables.get("GOSUB_RESULT", "") if not peer.hungup else ""
        caller = self.world.channels[run.caller_id]
        kind = result.upper()
        if not result or not (kind in ("BUSY", "CONGESTION", "CHANUNAVAIL", "CONTINUE",
                                       "ABORT") or kind.startswith("GOTO:")) or caller.hungup:
            self._dial_bridge(run)
            return
        go_on = kind != "ABORT" or "g" in run.options
        if kind in ("BUSY", "CONGESTION", "CHANUNAVAIL"):
            run.status = kind
        self._dial_publish(run, peer, result)
        peer.dialed_by = None
        self.life.hangup_channel(peer, CAUSE_NORMAL, quiet=True)  # ast_autoservice_chan_hangup_peer
        run.done = True
        caller.waiting_hears = None
        if caller.dial_run is run:
            caller.dial_run = None
        self.pbx.dp_set_variable(caller, "DIALSTATUS", run.status)
        if kind.startswith("GOTO:"):
            context, exten, prio = ([*result[5:].split("^"), "", ""])[:3]
            self.pbx.run_dialplan(caller, context or caller.dialplan.context,
                              exten or caller.dialplan.exten, int(prio or 1))
        elif go_on:
            self.pbx.dp_continue(caller)
        else:
            self.pbx.pbx_end(caller)

    def _dial_bridge(self, run: DialRun) -> None:
        """Dial ANSWER, then ast_bridge_call: answer the caller, a new basic bridge, the called
        channel imparted first, then the caller joins."""
        caller = self.world.channels[run.caller_id]
        peer = self.world.channels[run.peer_id or ""]
        peer.dialed_by = None
        if caller.hungup or caller.destroyed:
            # the caller went away meanwhile: app_dial hangs up the called channel
            run.done = True
            if not (peer.hungup or peer.destroyed):
                self.life.hangup_channel(peer, caller.hangup_cause or CAUSE_NORMAL, quiet=True)
            return
        self._dial_publish(run, peer, "ANSWER")
        if peer.hungup or peer.destroyed:
            self._dial_returned(caller, run)
            return
        if caller.state != "Up":
            self.life.answer_channel(caller)
        caller.waiting_hears = None  # MOH or ringing stopped just before ast_bridge_call
        bridge = self.bridging.create_basic_bridge()
        peer.after_bridge = "hangup"
        caller.after_bridge = "dial"
        self.join_basic(bridge, peer)
        self.join_basic(bridge, caller)

    def _dial_returned(self, caller: Channel, run: DialRun | None) -> None:
        """The Dial() of `caller` returns after its bridge (app_dial.c `out:`): DIALSTATUS again;
        with `g` the dialplan goes on, else Dial returns -1 and the PBX hangs the caller up."""
        if run is not None:
            run.done = True
        if caller.dial_run is run:
            caller.dial_run = None
        self.pbx.dp_set_variable(caller, "DIALSTATUS", run.status if run else "ANSWER")
        if run is not None and "g" in run.options:
            self.pbx.dp_continue(caller)
        else:
            self.pbx.pbx_end(caller)

    # ----------------------------------------------------------- basic bridge
    def join_basic(self, bridge: Bridge, ch: Channel) -> None:
        """A channel joins a basic bridge; its DYNAMIC_FEATURES arm DTMF hooks
        (bridge_basic_setup_features)."""
        names = [n for n in ch.variables.get("DYNAMIC_FEATURES", "").split("#") if n]
        for n in names:
            if n not in self.world.dialplan.applicationmap:
                self.world.warnings.append(
                    f"Unknown DYNAMIC_FEATURES item '{n}' on channel {ch.name}")
        ch.features = [n for n in names if n in self.world.dialplan.applicationmap]
        ch.feature_digits = ""
        self.bridging.bridge_add(bridge, ch)

    def basic_bridge_left(self, left: LeftBridge) -> None:
        """A party left a basic bridge: its hooks go (REMOVE_ON_PULL), the bridge dissolves
        (the others are kicked, BridgeDestroyed), and each party that is not hung up does what
        follows a bridge for it (after the current change, as its own thread would)."""
        bridge, ch = left.bridge, left.channel
        if bridge.bridge_class != "basic":
            return
        ch.features = []
        ch.feature_digits = ""
        if ch.feature_timer is not None:
            ch.feature_timer.cancel()
            ch.feature_timer = None
        if not bridge.dissolved:
            bridge.dissolved = True
            for cid in list(bridge.channels):
                other = self.world.channels[cid]
                if ch.hungup and other.hangup_cause == CAUSE_NORMAL:
                    other.hangup_cause = ch.hangup_cause or CAUSE_NORMAL
                self.bridging.bridge_remove(bridge, other)
            self.bridging.destroy_bridge(bridge)
        if not (ch.hungup or ch.destroyed):
            self.world.schedule(0, lambda: self._after_bridge(ch), f"after bridge {ch.name}")

    def _after_bridge(self, ch: Channel) -> None:
        if ch.hungup or ch.destroyed or ch.bridge_id is not None or ch.suspended:
            return  # (a suspended channel's thread still runs its feature: it comes back here)
        mode, ch.after_bridge = ch.after_bridge, None
        goto, ch.pending_goto = ch.pending_goto, None
        if mode == "dial":
            run = ch.dial_run
            if goto is not None:
                # ast_bridge_call returns 0 (AST_SOFTHANGUP_ASYNCGOTO): the PBX goes on there
                if run is not None:
                    run.done = True
                    ch.dial_run = None
                self.pbx.dp_set_variable(ch, "DIALSTATUS", run.status if run else "ANSWER")
                self.pbx.run_dialplan(ch, goto[0], goto[1], 1)
            else:
                self._dial_returned(ch, run)
        elif goto is not None:
            self.pbx.run_dialplan(ch, goto[0], goto[1], 1)  # ast_bridge_run_after_goto
        else:
            self.life.hangup_channel(ch, ch.hangup_cause or CAUSE_NORMAL, quiet=True)

    # -------------------------------------------------------------- features
    def set_applicationmap(self, items: dict[str, tuple[str, str, str]]) -> None:
        """features.conf [applicationmap]: name → (dtmf, "self" | "peer", "App(data)"), e.g.
        {"verbatim-pause": ("*1", "self", "AGI(agi://127.0.0.1:4573/pause)")}. A channel uses
        the items its DYNAMIC_FEATURES variable lists (set before it is bridged)."""
        amap: dict[str, Feature] = {}
        for name, (dtmf, activate_on, call) in items.items():
            if activate_on not in ("self", "peer"):
                raise ValueError(f"{name}: activate_on must be 'self' or 'peer'")
            app, data = parse_app_call(call)
            amap[name] = Feature(name, dtmf, "self" if activate_on == "self" else "peer",
                                 app, data)
        self.world.dialplan.applicationmap = amap

    def feature_dtmf(self, ch: Channel, digit: str) -> None:
        """A digit read by a channel in a basic bridge (bridge_channel.c bridge_handle_dtmf,
        ast_bridge_channel_feature_digit)."""
        bridge = self.world.find_bridge(ch.bridge_id or "")
        if bridge is None or bridge.bridge_class != "basic" or not ch.features or ch.suspended:
            return
        items = [self.world.dialplan.applicationmap[n] for n in ch.features
                 if n in self.world.dialplan.applicationmap]
        collected = ch.feature_digits + digit
        if ch.feature_timer is not None:
            ch.feature_timer.cancel()
            ch.feature_timer = None
        candidates = sorted((f for f in items if f.dtmf.startswith(collected)),
                            key=lambda f: f.dtmf)
        if not candidates:
            ch.feature_digits = ""  # no hook can match: the digits pass through
            return
        hook = candidates[0]
        if hook.dtmf != collected:
            ch.feature_digits = collected

            def timed_out() -> None:
                ch.feature_digits = ""
                ch.feature_timer = None

            ch.feature_timer = self.world.schedule(FEATURE_DIGIT_TIMEOUT, timed_out,
                                                   f"feature digits {ch.name}")
            return
        ch.feature_digits = ""
        targets = [ch] if hook.activate_on == "self" else [
            self.world.channels[c] for c in bridge.channels if c != ch.id]
        for target in targets:
            self._run_feature(target, ch, hook)

    def _run_feature(self, ch: Channel, activator: Channel, feature: Feature) -> None:
        """dynamic_dtmf_hook_callback → ast_bridge_channel_run_app, bridge channel suspended."""
        self.pbx.dp_set_variable(ch, "DYNAMIC_FEATURENAME", feature.name)
        self.pbx.dp_set_variable(ch, "DYNAMIC_WHO_ACTIVATED", activator.name)
        ch.suspended = True
        saved = (ch.dialplan.app_name, ch.dialplan.app_data)
        # pbx_exec: the snapshot shows the application; same location, so no ChannelDialplan
        ch.dialplan.app_name, ch.dialplan.app_data = feature.app, feature.app_data

        def done() -> None:
            ch.suspended = False
            if not ch.destroyed:
                ch.dialplan.app_name, ch.dialplan.app_data = saved
            if ch.bridge_id is None and (ch.after_bridge or ch.pending_goto):
                self._after_bridge(ch)  # kicked out meanwhile (the bridge dissolved)

        app = feature.app.lower()
        if app == "agi":
            self.agi.run_agi(ch, self.pbx.substitute(ch, feature.app_data), "feature",
                         lambda s: done())
        elif app in ("playback", "wait"):
            seconds = (self.pbx.playback_length(feature.app_data) if app == "playback"
                       else float(feature.app_data or 0))
            self.world.schedule(seconds, done, f"feature {feature.name} {ch.name}")
        else:
            if app == "set":
                name, _, value = feature.app_data.partition("=")
                self.pbx.dp_set_variable(ch, name.strip(), value)
            elif app != "noop":
                self.world.warnings.append(f"feature {feature.name}: {feature.app} not simulated")
            done()
