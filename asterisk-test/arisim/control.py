"""Test control of a running simulator: HTTP endpoints under /_sim/ and a client for them.

The endpoints mirror Simulator's Python methods, for tests that run the daemon (or the simulator)
in another process:

  GET  /_sim/state                       channels, bridges (members), live/stored recordings
  GET  /_sim/clock                       {"now", "epoch", "mode"}
  GET  /_sim/requests?since=N            REST requests received (method, path, params, status, t)
  GET  /_sim/events?since=N              events produced ({t, app, event, delivered})
  GET  /_sim/errors                      {"validation": [...], "errors": [...], "warnings": [...]}
  POST /_sim/advance      {"seconds"}    move the manual clock → {"now"}
  POST /_sim/calls        {endpoint, caller_number, caller_name, args, app, tone_hz,
                           sends_media, exten, channel_id}  → {"channel_id", "channel"}
  POST /_sim/dialplan_calls {exten, context, endpoint, caller_number, caller_name, tone_hz,
                           sends_media, channel_id}  → {"channel_id", "channel"}  (hook mode:
                           the call runs exten@context, never in Stasis)
  POST /_sim/applicationmap {"items": {name: [dtmf, "self"|"peer", "App(data)"]}}
  GET  /_sim/agi?since=N                 FastAGI sessions (see agi.py)
  POST /_sim/endpoints    {endpoint, result, answer_after, tone_hz, sends_media, ringing,
                           talking, hangup_after, busy_hangup_after, forward_to,
                           state_before_dial}
  POST /_sim/dialplan     {context, pattern, steps: [[app, data], ...]}
  POST /_sim/channels/{id}/answer | busy | reject
  POST /_sim/channels/{id}/forward {"forward_to"}      the ringing phone answers 302
  POST /_sim/channels/{id}/hangup {"cause"}
  POST /_sim/channels/{id}/dtmf   {"digit", "duration_ms"}
  POST /_sim/channels/{id}/media  {"talking", "sends_media", "tone_hz"}
  POST /_sim/channels/{id}/hold   {"musicclass"}        ChannelHold (the phone holds)
  POST /_sim/channels/{id}/unhold                       ChannelUnhold
  POST /_sim/channels/{id}/blind_transfer {exten, context, via, hangup_after}
                                         → {"result", "local_one", "local_two"}
  POST /_sim/attended_transfer {first_leg, second_leg, result, delay, hangup_after}
                                         → {"result", "local_one", "local_two"}
  POST /_sim/abandon_transfer  {first_leg, second_leg}
  POST /_sim/recordings/{name}/finish
  POST /_sim/recordings/{name}/fail {"cause"}
  POST /_sim/websockets/drop

No authentication: these are for tests only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from .attended import ATTENDED_BYE_DELAY, ATTENDED_SETUP_DELAY
from .engine import ControlError
from .transfers import REFER_BYE_DELAY

if TYPE_CHECKING:
    from .server import Simulator


def add_control_routes(sim: Simulator, app: web.Application) -> None:
    r = app.router

    async def body(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return {}
        data = json.loads(await request.text() or "{}")
        return data if isinstance(data, dict) else {}

    def since(request: web.Request) -> int:
        return int(request.query.get("since", "0"))

    async def state(request: web.Request) -> web.Response:
        return web.json_response(sim.state())

    async def clock(request: web.Request) -> web.Response:
        return web.json_response({"now": sim.clock.now(), "epoch": sim.clock.epoch(),
                                  "mode": sim.clock.mode})

    async def requests(request: web.Request) -> web.Response:
        return web.json_response([x.json() for x in sim.requests[since(request):]])

    async def events(request: web.Request) -> web.Response:
        return web.json_response([x.json() for x in sim.hub.log[since(request):]])

    async def errors(request: web.Request) -> web.Response:
        return web.json_response({"validation": sim.hub.errors, "errors": sim.errors,
                                  "warnings": sim.warnings})

    async def advance(request: web.Request) -> web.Response:
        data = await body(request)
        now = await sim.advance(float(data.get("seconds", 0)))
        return web.json_response({"now": now})

    async def calls(request: web.Request) -> web.Response:
        data = await body(request)
        ch = sim.start_call(**data)
        return web.json_response({"channel_id": ch.id, "channel": ch.json()})

    async def dialplan_calls(request: web.Request) -> web.Response:
        data = await body(request)
        ch = sim.start_dialplan_call(**data)
        return web.json_response({"channel_id": ch.id, "channel": ch.json()})

    async def applicationmap(request: web.Request) -> web.Response:
        data = await body(request)
        try:
            sim.set_applicationmap({str(k): (str(v[0]), str(v[1]), str(v[2]))
                                    for k, v in dict(data.get("items", {})).items()})
        except (ValueError, IndexError, TypeError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def agi(request: web.Request) -> web.Response:
        return web.json_response([s.json() for s in sim.agi_sessions[since(request):]])

    async def endpoints(request: web.Request) -> web.Response:
        data = await body(request)
        try:
            b = sim.set_endpoint(data.pop("endpoint"), **data)
        except ControlError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response({"result": b.result})

    async def dialplan(request: web.Request) -> web.Response:
        data = await body(request)
        sim.add_extension(str(data["context"]), str(data["pattern"]),
                          [(str(a), str(d)) for a, d in data.get("steps", [])])
        return web.json_response({"ok": True})

    async def attended(request: web.Request) -> web.Response:
        data = await body(request)
        outcome = sim.attended_transfer(
            str(data["first_leg"]), str(data["second_leg"]),
            result=data.get("result", "success"),
            delay=float(data.get("delay", ATTENDED_SETUP_DELAY)),
            hangup_after=_opt_float(data, "hangup_after", ATTENDED_BYE_DELAY))
        return web.json_response(outcome.json())

    async def abandon(request: web.Request) -> web.Response:
        data = await body(request)
        sim.abandon_transfer(str(data["first_leg"]), str(data["second_leg"]))
        return web.json_response({"ok": True})

    async def channel_action(request: web.Request) -> web.Response:
        cid, action = request.match_info["id"], request.match_info["action"]
        data = await body(request)
        if action == "answer":
            sim.answer(cid)
        elif action == "busy":
            sim.busy(cid)
        elif action == "reject":
            sim.reject(cid)
        elif action == "hangup":
            sim.hangup(cid, int(data.get("cause", 16)))
        elif action == "dtmf":
            sim.send_dtmf(cid, str(data.get("digit", "1")), int(data.get("duration_ms", 100)))
        elif action == "media":
            sim.set_media(cid, talking=data.get("talking"),
                          sends_media=data.get("sends_media"), tone_hz=data.get("tone_hz"))
        elif action == "forward":
            sim.forward(cid, str(data["forward_to"]))
        elif action == "hold":
            sim.hold(cid, data.get("musicclass"))
        elif action == "unhold":
            sim.unhold(cid)
        elif action == "blind_transfer":
            outcome = sim.blind_transfer(
                cid, str(data["exten"]), str(data.get("context", "transfer-target")),
                via=data.get("via", "refer"),
                hangup_after=_opt_float(data, "hangup_after", REFER_BYE_DELAY))
            return web.json_response(outcome.json())
        else:
            return web.json_response({"message": f"unknown action {action}"}, status=404)
        return web.json_response({"ok": True})

    async def recording_action(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        data = await body(request)
        if action == "finish":
            sim.finish_recording(name)
        elif action == "fail":
            sim.fail_recording(name, str(data.get("cause", "Recording failed")))
        else:
            return web.json_response({"message": f"unknown action {action}"}, status=404)
        return web.json_response({"ok": True})

    async def drop(request: web.Request) -> web.Response:
        await sim.drop_websockets()
        return web.json_response({"ok": True})

    r.add_get("/_sim/state", state)
    r.add_get("/_sim/clock", clock)
    r.add_get("/_sim/requests", requests)
    r.add_get("/_sim/events", events)
    r.add_get("/_sim/errors", errors)
    r.add_post("/_sim/advance", advance)
    r.add_post("/_sim/calls", calls)
    r.add_post("/_sim/dialplan_calls", dialplan_calls)
    r.add_post("/_sim/applicationmap", applicationmap)
    r.add_get("/_sim/agi", agi)
    r.add_post("/_sim/endpoints", endpoints)
    r.add_post("/_sim/dialplan", dialplan)
    r.add_post("/_sim/attended_transfer", not_found_on_error(attended))
    r.add_post("/_sim/abandon_transfer", not_found_on_error(abandon))
    r.add_post("/_sim/channels/{id}/{action}", not_found_on_error(channel_action))
    r.add_post("/_sim/recordings/{name:.+}/{action}", not_found_on_error(recording_action))
    r.add_post("/_sim/websockets/drop", drop)


def not_found_on_error(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A control naming a channel, recording or transfer the simulator does not have: 404."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ControlError as exc:
            return web.json_response({"message": str(exc)}, status=404)

    return wrapped


def _opt_float(data: dict[str, Any], key: str, default: float) -> float | None:
    """A float, JSON null (→ None) or the default when absent."""
    if key not in data:
        return default
    value = data[key]
    return None if value is None else float(value)


class SimControl:
    """Async client for /_sim/ (tests that run the daemon or the simulator as a subprocess)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SimControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, self.base_url + path, json=data) as resp:
            payload = await resp.json()
            if resp.status >= 400:
                raise LookupError(payload.get("message", resp.status))
            return payload

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/_sim/state")
        return result

    async def clock(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/_sim/clock")
        return result

    async def requests(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/_sim/requests?since={since}")
        return result

    async def events(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/_sim/events?since={since}")
        return result

    async def errors(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = await self._call("GET", "/_sim/errors")
        return result

    async def advance(self, seconds: float) -> float:
        result = await self._call("POST", "/_sim/advance", {"seconds": seconds})
        return float(result["now"])

    async def start_call(self, **options: Any) -> str:
        result = await self._call("POST", "/_sim/calls", options)
        return str(result["channel_id"])

    async def start_dialplan_call(self, exten: str, **options: Any) -> str:
        """A call the dialplan keeps (see Simulator.start_dialplan_call); → its channel id."""
        result = await self._call("POST", "/_sim/dialplan_calls", {"exten": exten, **options})
        return str(result["channel_id"])

    async def set_applicationmap(self, items: dict[str, tuple[str, str, str]]) -> None:
        await self._call("POST", "/_sim/applicationmap",
                         {"items": {k: list(v) for k, v in items.items()}})

    async def agi_sessions(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/_sim/agi?since={since}")
        return result

    async def wait_agi(self, channel: str | None = None, state: str = "done",
                       timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline
                       ) -> dict[str, Any]:
        """Poll /_sim/agi until a session of `channel` (id or name; None: any) is or has been
        in `state`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for s in await self.agi_sessions():
                if (channel is None or channel in (s["channel_id"], s["channel_name"])) and (
                        s["state"] == state or state in s["visited"]):
                    found: dict[str, Any] = s
                    return found
            if loop.time() > deadline:
                raise TimeoutError(f"no AGI session {channel!r} in state {state!r}")
            await asyncio.sleep(0.02)

    async def set_endpoint(self, endpoint: str, **options: Any) -> None:
        await self._call("POST", "/_sim/endpoints", {"endpoint": endpoint, **options})

    async def answer(self, channel_id: str) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/answer")

    async def busy(self, channel_id: str) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/busy")

    async def reject(self, channel_id: str) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/reject")

    async def hangup(self, channel_id: str, cause: int = 16) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/hangup", {"cause": cause})

    async def set_media(self, channel_id: str, **media: Any) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/media", media)

    async def send_dtmf(self, channel_id: str, digit: str, duration_ms: int = 100) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/dtmf",
                         {"digit": digit, "duration_ms": duration_ms})

    async def add_extension(self, context: str, pattern: str,
                            steps: list[tuple[str, str]]) -> None:
        await self._call("POST", "/_sim/dialplan",
                         {"context": context, "pattern": pattern,
                          "steps": [list(step) for step in steps]})

    async def forward(self, channel_id: str, forward_to: str) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/forward",
                         {"forward_to": forward_to})

    async def hold(self, channel_id: str, musicclass: str | None = None) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/hold",
                         {"musicclass": musicclass} if musicclass else {})

    async def unhold(self, channel_id: str) -> None:
        await self._call("POST", f"/_sim/channels/{channel_id}/unhold")

    async def blind_transfer(self, channel_id: str, exten: str,
                             context: str = "transfer-target", via: str = "refer",
                             hangup_after: float | None = REFER_BYE_DELAY) -> dict[str, Any]:
        """→ {"result", "local_one", "local_two"} (see Simulator.blind_transfer)."""
        result: dict[str, Any] = await self._call(
            "POST", f"/_sim/channels/{channel_id}/blind_transfer",
            {"exten": exten, "context": context, "via": via, "hangup_after": hangup_after})
        return result

    async def attended_transfer(self, first_leg: str, second_leg: str, *,
                                result: str = "success",
                                delay: float = ATTENDED_SETUP_DELAY,
                                hangup_after: float | None = ATTENDED_BYE_DELAY
                                ) -> dict[str, Any]:
        """→ {"result", "local_one", "local_two"} (see Simulator.attended_transfer)."""
        outcome: dict[str, Any] = await self._call(
            "POST", "/_sim/attended_transfer",
            {"first_leg": first_leg, "second_leg": second_leg, "result": result,
             "delay": delay, "hangup_after": hangup_after})
        return outcome

    async def abandon_transfer(self, first_leg: str, second_leg: str) -> None:
        await self._call("POST", "/_sim/abandon_transfer",
                         {"first_leg": first_leg, "second_leg": second_leg})

    async def finish_recording(self, name: str) -> None:
        await self._call("POST", f"/_sim/recordings/{name}/finish")

    async def fail_recording(self, name: str, cause: str = "Recording failed") -> None:
        await self._call("POST", f"/_sim/recordings/{name}/fail", {"cause": cause})

    async def drop_websockets(self) -> None:
        await self._call("POST", "/_sim/websockets/drop")

    async def wait_for_event(
        self, etype: str, timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline
        since: int = 0,
                             **fields: Any) -> dict[str, Any]:
        """Poll /_sim/events until a delivered event of `etype` (with top-level `fields`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for rec in await self.events(since):
                ev = rec["event"]
                if rec["delivered"] and ev["type"] == etype and all(
                        ev.get(k) == v for k, v in fields.items()):
                    found: dict[str, Any] = ev
                    return found
            if loop.time() > deadline:
                raise TimeoutError(f"no {etype} event within {timeout}s")
            await asyncio.sleep(0.02)

    async def wait_for_request(
        self, method: str, path_contains: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline
        since: int = 0,
    ) -> dict[str, Any]:
        """Poll /_sim/requests until the client made a matching REST request."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for r in await self.requests(since):
                if r["method"] == method and path_contains in r["path"]:
                    found: dict[str, Any] = r
                    return found
            if loop.time() > deadline:
                raise TimeoutError(f"no {method} {path_contains} within {timeout}s")
            await asyncio.sleep(0.02)
