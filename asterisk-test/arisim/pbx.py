"""The dialplan interpreter (the Pbx part): channels outside Stasis run their extensions.

`run_dialplan`/`dp_continue` (main/pbx.c __ast_pbx_run) run Answer, Ringing, Wait, Playback
(PLAYBACKSTATUS), Busy, Set (with "_"/"__" inheritance), NoOp, Log, Hangup, Stasis
(STASISSTATUS), AGI, Dial, MixMonitor, Gosub, Return, Goto and GotoIf with numbered or labelled
priorities. ${VAR}, the few ${FUNC(...)} that `read_variable` knows and $[...] expressions
(ast_expr: = != < > <= >= & |) are substituted. When the steps run out, a Local half is hung up;
any other channel's PBX ends with ast_hangup (no ChannelHangupRequest), an unanswered one told
busy/congestion first if its DIALSTATUS says so.

The part runs on the World and ChannelLife; ringing or busy on the other Local half is the
dialling part's (`FarSignals`), and AGI(), Dial() and MixMonitor() are the applications'
(`DialplanApps`: agi.py, appdial.py, mixmonitor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .channels import ChannelLife
from .dialplan import split_app_args
from .expr import evaluate, is_true
from .mixmonitor import AST_SPOOL_DIR
from .model import CAUSE_BUSY, CAUSE_CONGESTION, CAUSE_NORMAL, Channel
from .world import World


class FarSignals(Protocol):
    def far_ringing(self, ch: Channel) -> None: ...

    def far_busy(self, ch: Channel, hangup_after: float = 0.0) -> None: ...


class DialplanApps(Protocol):
    def start_agi(self, ch: Channel, data: str) -> None: ...

    def start_dial(self, ch: Channel, data: str) -> None: ...

    def start_mixmonitor(self, ch: Channel, data: str) -> None: ...


class Pbx:
    """The dialplan interpreter on one World."""

    def __init__(self, world: World, life: ChannelLife, far: FarSignals,
                 apps: DialplanApps) -> None:
        self.world = world
        self.life = life
        self.far = far
        self.apps = apps

    def run_dialplan(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        """Run `exten@context` on a channel outside Stasis (a Local ";2", an answered ";1", a
        call the dialplan keeps)."""
        steps = self.world.dialplan.lookup(context, exten)
        ch.dialplan.context, ch.dialplan.exten = context, exten
        if steps is None:
            self.life.hangup_channel(ch, 1)
            return
        ch.dp_steps = steps
        ch.dp_index = max(0, priority - 1)
        self.dp_continue(ch)

    def dp_continue(self, ch: Channel) -> None:
        """Run the channel's dialplan from where it stands until an application waits (a timer,
        an AGI session, a Dial) or the steps run out (main/pbx.c __ast_pbx_run)."""
        app = ""
        while not (ch.hungup or ch.destroyed) and ch.dp_index < len(ch.dp_steps):
            app, raw = ch.dp_steps[ch.dp_index]
            ch.dp_index += 1
            ch.dialplan.priority = ch.dp_index
            data = self.substitute(ch, raw)
            self.life.set_dialplan_app(ch, app, data)
            other = self.world.peer(ch)
            if app == "Answer":
                self.life.answer_channel(ch)
            elif app == "Ringing":
                if other is not None:
                    self.far.far_ringing(other)
            elif app in ("Wait", "Playback", "Busy"):
                if app == "Playback" and ch.state != "Up":
                    self.life.answer_channel(ch)
                if app == "Busy":
                    self.life.set_state(ch, "Busy")
                    if other is not None:
                        self.far.far_busy(other)
                seconds = (self.playback_length(data) if app == "Playback"
                           else float(data or 0))
                self.world.schedule(seconds, self._dp_after(ch, app, data),
                                    f"{app}({data}) {ch.name}", owner=ch)
                return
            elif app in ("Goto", "GotoIf"):
                target = data
                if app == "GotoIf":
                    cond, _, branches = data.partition("?")
                    yes, _, no = branches.partition(":")
                    target = yes if is_true(cond) else no
                if target and not self.dp_goto(ch, target):
                    self.world.warnings.append(f"{app}({data}) on {ch.name}: no such destination")
                    self.pbx_end(ch)  # pbx_builtin_goto returns -1: the PBX ends
                    return
            elif app == "MixMonitor":
                self.apps.start_mixmonitor(ch, data)
            elif app == "Log":
                level, _, message = data.partition(",")
                self.world.dialplan_log.append((ch.name, level.strip().upper(), message))
            elif app == "Set":
                name, _, value = data.partition("=")
                self.dp_set_variable(ch, name.strip(), value)
            elif app == "AGI":
                self.apps.start_agi(ch, data)
                return
            elif app == "Dial":
                self.apps.start_dial(ch, data)
                return
            elif app == "Gosub":
                self.dp_gosub(ch, data)
                return
            elif app in ("Return", "Hangup"):
                break
            elif app == "Stasis":
                name, *args = data.split(",")
                if self.life.enter_stasis(ch, name, args):
                    return
            elif app not in ("NoOp", "Verbose"):
                self.world.warnings.append(f"{app}({data}) on {ch.name}: not simulated, skipped")
        if ch.hungup or ch.destroyed or ch.in_stasis:
            return
        if app == "Return" and ch.dp_return is not None:
            back, ch.dp_return = ch.dp_return, None
            back()
        elif app != "Hangup" and ch.dp_saved is not None and ch.dp_return is not None:
            # a Dial U() routine ran off its end (app_stack.c gosub_run: abnormal exit): every
            # level returns at once to app_dial
            ch.dp_unwinding = True
            self.dp_abort(ch)
        elif ch.tech == "Local" or app == "Hangup":
            self.life.hangup_channel(ch, CAUSE_NORMAL)
        else:
            self.pbx_end(ch)

    def dp_gosub(self, ch: Channel, data: str) -> None:
        """Gosub([[context,]exten,]priority[(arg1[,...])]) (apps/app_stack.c): ARGn set, the
        routine runs until Return() (or its end), then the step after the Gosub. A hangup in
        the routine unwinds every level (dp_abort). Labels are not simulated (priority 1)."""
        target, args = data, ""
        if data.endswith(")") and "(" in data:
            target, _, args = data[:-1].partition("(")
        loc = ch.dialplan
        context, exten, prio = self.dp_destination(ch, target)
        steps = self.world.dialplan.lookup(context, exten)
        if steps is None or prio is None:
            self.world.warnings.append(f"Gosub({data}) on {ch.name}: no such destination")
            self.pbx_end(ch)  # gosub_exec returns -1: the PBX ends
            return
        saved = (ch.dp_steps, ch.dp_index, loc.context, loc.exten, ch.dp_return)

        def back() -> None:
            ch.dp_steps, ch.dp_index = saved[0], saved[1]
            ch.dialplan.context, ch.dialplan.exten = saved[2], saved[3]
            ch.dialplan.priority = saved[1]
            ch.dp_return = saved[4]
            if ch.hungup or ch.destroyed or ch.dp_unwinding:
                self.dp_abort(ch)
            else:
                self.dp_continue(ch)

        ch.dp_return = back
        for i, value in enumerate(split_app_args(args) if args else [], 1):
            self.dp_set_variable(ch, f"ARG{i}", value)
        loc.context, loc.exten = context, exten
        ch.dp_steps, ch.dp_index = steps, prio - 1
        self.dp_continue(ch)

    def dp_destination(self, ch: Channel, target: str) -> tuple[str, str, int | None]:
        """`[[context,]exten,]priority` from the channel's location (priority a number or a
        label of the extension): (context, exten, priority or None)."""
        parts = [p.strip() for p in target.split(",")]
        loc = ch.dialplan
        context, exten = loc.context, loc.exten
        if len(parts) >= 2:
            exten = parts[-2]
        if len(parts) >= 3:
            context = parts[-3]
        return context, exten, self.world.dialplan.priority_of(context, exten, parts[-1])

    def dp_goto(self, ch: Channel, target: str) -> bool:
        """Goto (pbx_builtin_goto → ast_parseable_goto): the dialplan goes on at `target`; False
        when it does not exist."""
        context, exten, prio = self.dp_destination(ch, target)
        steps = self.world.dialplan.lookup(context, exten)
        if steps is None or prio is None or not 0 < prio <= len(steps):
            return False
        ch.dialplan.context, ch.dialplan.exten = context, exten
        ch.dp_steps, ch.dp_index = steps, prio - 1
        return True

    def dp_abort(self, ch: Channel) -> None:
        """The channel's PBX stops (hangup): a Gosub in progress returns to its caller."""
        back, ch.dp_return = ch.dp_return, None
        if back is not None:
            back()

    def playback_length(self, data: str) -> float:
        """Playback(file[&file2][,options]): the files' lengths (missing ones: 0 s)."""
        files = data.split(",", 1)[0]
        return sum(self.world.dialplan.playback_seconds(f) for f in files.split("&") if f)

    def playback_status(self, data: str) -> str:
        """PLAYBACKSTATUS after Playback(data) ran to its end (apps/app_playback.c
        playback_exec): FAILED when a file is missing — the others still play and the dialplan
        goes on —, else SUCCESS."""
        files = [f for f in data.split(",", 1)[0].split("&") if f]
        known = self.world.dialplan.dialplan_sounds.keys() | self.world.dialplan.sounds.keys()
        return "FAILED" if any(f not in known for f in files) else "SUCCESS"

    def _dp_after(self, ch: Channel, app: str, data: str) -> Callable[[], None]:
        """What follows Wait, Playback or Busy once its time is up."""
        if app == "Busy":
            return lambda: self._busy_done(ch)
        if app == "Playback":
            def played() -> None:
                self.dp_set_variable(ch, "PLAYBACKSTATUS", self.playback_status(data))
                self.dp_continue(ch)
            return played
        return lambda: self.dp_continue(ch)

    def pbx_end(self, ch: Channel) -> None:
        """The dialplan of a channel the PBX runs ends (no Local half): __ast_pbx_run's
        auto-fallthrough hangs it up with ast_hangup — no ChannelHangupRequest. A BUSY or
        CONGESTION/CHANUNAVAIL DIALSTATUS is indicated first (pbx_builtins.c indicate_busy,
        indicate_congestion: state Busy and that cause if not answered)."""
        status = ch.variables.get("DIALSTATUS", "")
        cause = ch.hangup_cause or CAUSE_NORMAL
        if status in ("BUSY", "CONGESTION", "CHANUNAVAIL") and ch.state != "Up":
            cause = CAUSE_BUSY if status == "BUSY" else CAUSE_CONGESTION
            self.life.set_state(ch, "Busy")
        self.life.hangup_channel(ch, cause, quiet=True)

    def substitute(self, ch: Channel, data: str) -> str:
        """${VAR} and ${FUNC(arg)} in application data (pbx_substitute_variables_helper);
        unknown names give ""."""
        out: list[str] = []
        i = 0
        while i < len(data):
            if data.startswith("$[", i):
                end = _closing(data, i + 2, "[", "]")
                if end < 0:
                    out.append(data[i:])
                    break
                out.append(evaluate(self.substitute(ch, data[i + 2 : end])))
                i = end + 1
            elif data.startswith("${", i):
                depth, j = 1, i + 2
                while j < len(data) and depth:
                    if data.startswith("${", j):
                        depth += 1
                        j += 2
                        continue
                    if data[j] == "}":
                        depth -= 1
                    j += 1
                if depth:
                    out.append(data[i:])
                    break
                name = self.substitute(ch, data[i + 2 : j - 1])
                out.append(self.read_variable(ch, name) or "")
                i = j
            else:
                out.append(data[i])
                i += 1
        return "".join(out)

    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None:
        """Set(NAME=value) (pbx_builtin_setvar_helper): a leading "_" makes the variable
        inherited by channels this one dials (once), "__" always; ChannelVarset shows the full
        name."""
        if not name:
            return
        bare = name.lstrip("_")
        level = min(2, len(name) - len(bare))
        if level:
            ch.inherit[bare] = level
        else:
            ch.inherit.pop(bare, None)
        ch.variables[bare] = value
        self.world.emit_channel("ChannelVarset", ch, variable=name, value=value)

    def _busy_done(self, ch: Channel) -> None:
        self.life.hangup_channel(ch, CAUSE_BUSY)

    def read_variable(self, ch: Channel, name: str) -> str | None:
        """A channel variable, or one of the few dialplan functions the simulator knows."""
        functions = {
            "CALLERID(num)": ch.caller.number,
            "CALLERID(name)": ch.caller.name,
            "CALLERID(dnid)": ch.dnid,
            "CONNECTEDLINE(num)": ch.connected.number,
            "CONNECTEDLINE(name)": ch.connected.name,
            "CHANNEL(name)": ch.name,
            "CHANNEL(uniqueid)": ch.id,
            "CHANNEL(state)": ch.state,
            "CHANNEL(language)": ch.language,
            "CALLERID(all)": (f'"{ch.caller.name}" <{ch.caller.number}>' if ch.caller.name
                              else ch.caller.number),
        }
        if name in functions:
            return functions[name]
        if name.startswith("FILTER(") and name.endswith(")"):
            allowed, _, text = name[len("FILTER("):-1].partition(",")
            return filter_chars(allowed, text)
        builtins = {  # pbx_retrieve_variable
            "EPOCH": str(int(self.world.clock.epoch())),
            "ASTSPOOLDIR": AST_SPOOL_DIR,
            "UNIQUEID": ch.id,
            "CHANNEL": ch.name,
            "EXTEN": ch.dialplan.exten,
            "CONTEXT": ch.dialplan.context,
            "PRIORITY": str(ch.dialplan.priority),
            "HANGUPCAUSE": str(ch.hangup_cause) if ch.hungup else "0",
        }
        if name in builtins:
            return builtins[name]
        return ch.variables.get(name)



def filter_chars(allowed: str, text: str) -> str:
    """FILTER(allowed,text) (func_strings.c filter): the characters of `text` in `allowed`,
    where `a-z` is a range."""
    keep: set[str] = set()
    i = 0
    while i < len(allowed):
        if i + 2 < len(allowed) and allowed[i + 1] == "-":
            keep |= {chr(c) for c in range(ord(allowed[i]), ord(allowed[i + 2]) + 1)}
            i += 3
        else:
            keep.add(allowed[i])
            i += 1
    return "".join(c for c in text if c in keep)


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the `closing` that ends a group opened just before `start` (-1: none)."""
    depth = 1
    for j in range(start, len(text)):
        if text[j] == opening:
            depth += 1
        elif text[j] == closing:
            depth -= 1
            if depth == 0:
                return j
    return -1
