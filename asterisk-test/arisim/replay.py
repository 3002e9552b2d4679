"""Replay a capture of asterisk-test/traces (Asterisk 22.10.1) on the simulator and compare.

The requests the reference app made are sent again at the same virtual times (the manual clock
advances by the trace's `t` deltas), with the capture's channel and bridge ids replaced by the
simulator's: bridges by the ids the simulator answered, channels by name (the capture's name with
its counter stripped, "Local/200@targets-00000028;1" → "Local/200@targets;1", in creation order).
Then, per channel, bridge and recording, the sequences of events and their key fields (state,
args, dialstatus, forward, cause, replace_channel, a transfer's result, destination and the
bridges it names, recording state and duration...) are compared, ignoring ChannelVarset and
ChannelConnectedLine. Status codes and the key fields of replies are compared
too. Things the capture shows that no request caused (a SIP caller, its BYE, a phone's REFER, an
AMI action, how a phone answers) are injected.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .server import Simulator

# The real captures, copied into the project (asterisk-test/traces/README.md says from where).
TRACE_DIR = Path(os.environ.get("ARISIM_TRACE_DIR", str(Path(__file__).parents[1] / "traces")))
IGNORED_EVENTS = {"ChannelVarset", "ChannelConnectedLine"}
_ID_RE = re.compile(r"\d{9,11}\.\d+")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_COUNTER_RE = re.compile(r"-[0-9a-f]{8}(?=;|$)")
_CHANNEL_KEYS = ("channel", "peer", "replace_channel", "forwarded", "caller")


def load_trace(name: str) -> list[dict[str, Any]]:
    path = TRACE_DIR / (name if name.endswith(".jsonl") else f"{name}.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def normalize_name(name: str) -> str:
    """Channel name without its counter and embedded ids, to match capture and simulation."""
    return _ID_RE.sub("*", _COUNTER_RE.sub("", name))


def _channels_in(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        for item in value:
            yield from _channels_in(item)
    elif isinstance(value, dict):
        if "id" in value and "name" in value and "dialplan" in value:
            yield value
        for v in value.values():
            if isinstance(v, (dict, list)):
                yield from _channels_in(v)


Injection = tuple[float, Callable[[Simulator, "IdMap"], Awaitable[None] | None]]


class IdMap:
    """Capture ids → simulator ids."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.names: dict[str, str] = {}
        for e in entries:
            payload = e.get("event") if e["kind"] == "event" else e.get("response")
            for ch in _channels_in(payload):
                self.names.setdefault(ch["id"], ch["name"])
        self.known: dict[str, str] = {}

    def learn(self, trace_id: str, sim_id: str) -> None:
        self.known.setdefault(trace_id, sim_id)

    def channel(self, sim: Simulator, trace_id: str) -> str:
        if trace_id in self.known:
            return self.known[trace_id]
        name = self.names.get(trace_id)
        if name is None:
            return trace_id
        wanted = normalize_name(name)
        taken = set(self.known.values())
        for ch in sim.channels.values():
            if ch.id not in taken and normalize_name(ch.name) == wanted:
                self.known[trace_id] = ch.id
                return ch.id
        return trace_id

    def sub(self, sim: Simulator, text: str) -> str:
        text = _UUID_RE.sub(lambda m: self.known.get(m.group(0), m.group(0)), text)
        return _ID_RE.sub(lambda m: self.channel(sim, m.group(0)), text)

    def value(self, sim: Simulator, value: Any) -> Any:
        if isinstance(value, str):
            return self.sub(sim, value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value


@dataclass
class ReplayOptions:
    injections: list[Injection] = field(default_factory=list)
    cut_off: bool = False  # the capture stops mid-call: the simulation may go on after it
    duration_tolerance: int = 0
    time_tolerance: float = 0.1
    app: str = "verbatim"


def _summary(ev: dict[str, Any], ch_id: Callable[[str], str],
             br_id: Callable[[str], str]) -> tuple[Any, ...]:
    """The fields of an event that must agree between capture and simulation."""
    out: list[Any] = [ev["type"]]
    for key in ("channel", "peer"):
        if key in ev:
            out += [key, normalize_name(ev[key]["name"]), ev[key]["state"]]
    for key in ("args", "dialstatus", "forward", "dialstring", "cause", "cause_txt",
                "tech_cause", "soft", "dialplan_app", "dialplan_app_data", "exten", "context",
                "result", "is_external", "destination_type", "destination_application"):
        if key in ev:
            out += [key, ev[key]]
    for key in ("transferee", "transfer_target"):  # present or not (ast_bridge_peer)
        out += [key, key in ev]
    if "replace_channel" in ev:
        out += ["replace", ch_id(ev["replace_channel"]["id"])]
    if "forwarded" in ev:
        out += ["forwarded", normalize_name(ev["forwarded"]["name"])]
    for key in ("transferer_first_leg", "transferer_second_leg"):
        if key in ev:
            out += [key, ch_id(ev[key]["id"])]
    for key in ("destination_link_first_leg", "destination_link_second_leg"):
        if key in ev:
            out += [key, normalize_name(ev[key]["name"]), ev[key]["state"]]
    for key in ("bridge", "transferer_first_leg_bridge", "transferer_second_leg_bridge"):
        if key in ev:
            out += [key, br_id(ev[key]["id"])]
    if "recording" in ev:
        r = ev["recording"]
        target = r["target_uri"]
        kind, _, tid = target.partition(":")
        target = f"{kind}:{ch_id(tid) if kind == 'channel' else br_id(tid)}"
        out += ["recording", r["state"], target, r.get("cause")]
    return tuple(out)


def _keys(ev: dict[str, Any], ch_id: Callable[[str], str],
          br_id: Callable[[str], str], rec: Callable[[str], str]) -> list[str]:
    if "recording" in ev:
        return [f"recording {rec(ev['recording']['name'])}"]
    keys = []
    for key in ("channel", "peer", "transferer_first_leg"):
        if key in ev:
            keys.append(f"channel {ch_id(ev[key]['id'])}")
            break
    for key in ("bridge", "transferer_first_leg_bridge", "transferer_second_leg_bridge"):
        if key in ev:
            keys.append(f"bridge {br_id(ev[key]['id'])}")
    return keys


async def replay(name: str, sim: Simulator, options: ReplayOptions | None = None) -> list[str]:
    """Replay capture `name` against a started `sim` (manual clock); returns the differences."""
    opts = options or ReplayOptions()
    entries = load_trace(name)
    ids = IdMap(entries)
    problems: list[str] = []
    auth = base64.b64encode(f"{sim.username}:{sim.password}".encode()).decode()
    injections = sorted(opts.injections, key=lambda i: i[0])

    async def run_until(t: float) -> None:
        while injections and injections[0][0] <= t:
            at, action = injections.pop(0)
            await sim.advance(max(0.0, at - sim.clock.now()))
            result = action(sim, ids)
            if result is not None:
                await result
            await sim.settle()
        await sim.advance(max(0.0, t - sim.clock.now()))

    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as http:
        ws = await http.ws_connect(f"{sim.base_url}/ari/events?app={opts.app}")
        await sim.settle()
        for e in entries:
            if e["kind"] != "request":
                continue
            await run_until(e["t"])
            path = "/".join(ids.sub(sim, seg) for seg in e["path"].split("/"))
            params = {k: ids.value(sim, v) for k, v in e["params"].items()}
            async with http.request(e["method"], f"{sim.base_url}/ari{path}",
                                    params=params) as resp:
                text = await resp.text()
                body = json.loads(text) if text else None
            where = f"{e['t']:.3f} {e['method']} {e['path']}"
            if resp.status != e["status"]:
                problems.append(f"{where}: status {resp.status} != {e['status']} ({text[:120]})")
                continue
            problems.extend(_compare_reply(where, e["response"], body, ids, sim))
            await sim.settle()
        await run_until(entries[-1]["t"])
        await sim.settle()
        await ws.close()

    problems.extend(_compare_events(entries, sim, ids, opts))
    return problems


def _compare_reply(where: str, want: Any, got: Any, ids: IdMap, sim: Simulator) -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        if "id" in want and "id" in got:
            ids.learn(want["id"], got["id"])
        out = []
        for key in ("message", "state", "bridge_type", "technology", "format"):
            if key in want and want.get(key) != got.get(key):
                out.append(f"{where}: reply {key} {got.get(key)!r} != {want.get(key)!r}")
        if "name" in want and "dialplan" in want:
            if normalize_name(want["name"]) != normalize_name(got.get("name", "")):
                out.append(f"{where}: reply name {got.get('name')!r} != {want['name']!r}")
        elif "name" in want and ids.sub(sim, want["name"]) != got.get("name"):
            out.append(f"{where}: reply name {got.get('name')!r} != {want['name']!r}")
        return out
    if isinstance(want, list) and isinstance(got, list) and want and "dialplan" in want[0]:

        def rows(items: list[dict[str, Any]]) -> set[tuple[str, ...]]:
            return {(normalize_name(c["name"]), c["state"], c["dialplan"]["context"],
                     c["dialplan"]["app_name"], c["dialplan"]["app_data"]) for c in items}

        if rows(want) != rows(got):
            return [f"{where}: channels {sorted(rows(got))} != {sorted(rows(want))}"]
    return []


def _compare_events(entries: list[dict[str, Any]], sim: Simulator, ids: IdMap,
                    opts: ReplayOptions) -> list[str]:
    def ch_trace(tid: str) -> str:
        return ids.channel(sim, tid)

    def br_trace(tid: str) -> str:
        return ids.known.get(tid, tid)

    def rec_trace(name: str) -> str:
        return ids.sub(sim, name)

    def same(x: str) -> str:
        return x

    want: dict[str, list[tuple[float, tuple[Any, ...], dict[str, Any]]]] = {}
    for e in entries:
        if e["kind"] == "event" and e["event"]["type"] not in IGNORED_EVENTS:
            ev = e["event"]
            for k in _keys(ev, ch_trace, br_trace, rec_trace):
                want.setdefault(k, []).append((e["t"], _summary(ev, ch_trace, br_trace), ev))
    got: dict[str, list[tuple[float, tuple[Any, ...], dict[str, Any]]]] = {}
    for r in sim.hub.log:
        if r.delivered and r.app == opts.app and r.event["type"] not in IGNORED_EVENTS:
            for k in _keys(r.event, same, same, same):
                got.setdefault(k, []).append((r.at, _summary(r.event, same, same), r.event))
    problems: list[str] = []
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key, []), got.get(key, [])
        if len(g) < len(w) or (len(g) > len(w) and not opts.cut_off):
            problems.append(f"{key}: {len(g)} events, capture has {len(w)}:\n"
                            f"  sim:     {[s[1][0] for s in g]}\n"
                            f"  capture: {[s[1][0] for s in w]}")
            continue
        for (tw, sw, evw), (tg, sg, evg) in zip(w, g, strict=False):
            if sw != sg:
                problems.append(f"{key}: {sg} != capture {sw}")
            if abs(tw - tg) > opts.time_tolerance:
                problems.append(f"{key}: {sw[0]} at {tg:.3f}, capture at {tw:.3f}")
            dw = evw.get("recording", {}).get("duration")
            dg = evg.get("recording", {}).get("duration")
            if (dw is None) != (dg is None) or (
                    dw is not None and dg is not None and abs(dw - dg) > opts.duration_tolerance):
                problems.append(f"{key}: {sw[0]} duration {dg} != capture {dw}")
    return problems
