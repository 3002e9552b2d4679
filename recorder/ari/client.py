"""ARI's REST interface: one method per request the daemon makes.

Every method maps to one operation of Asterisk 22's spec (the test suite checks each request the
daemon sends against it). Errors carry the status and Asterisk's message; a connection failure is
status 0, so callers can tell "Asterisk said no" from "Asterisk is not there". Requests go over
recorder.ari.http's keep-alive connections; a stored recording's file (streamed) and the events
WebSocket over aiohttp's session.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from recorder.ari.http import HttpClient


class AriError(Exception):
    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.message = message
        self.method = method
        self.path = path


Params = Mapping[str, str | int | bool]


# What `quote` leaves as it is. Ids (channels, bridges, calls) are made of these alone, so most
# values skip it (its work was a tenth of a request's CPU in the daemon).
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def _q(value: str) -> str:
    return value if not value.strip(_UNRESERVED) else _quoted(value)


@lru_cache(maxsize=1024)
def _quoted(value: str) -> str:
    # The values that need it recur (a prompt's media URI, an endpoint, a format): quoted once
    # (quote was 1 % of the daemon's event loop, bench/history.md session 14).
    return quote(value, safe="")


class AriClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        username: str,
        password: str,
        app: str,
        timeout_s: float = 10.0,
        subscribe_all: bool = False,
    ) -> None:
        self._session = session
        self.subscribe_all = subscribe_all
        self._base = base_url.rstrip("/") + "/ari"
        self._http = HttpClient(base_url)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        # A header rather than aiohttp.BasicAuth (deprecated); it never appears in logs. Built
        # once, as aiohttp's header type (the WebSocket, a file) and as request header lines.
        self._headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Basic {token}"}))
        self._auth = f"Authorization: Basic {token}\r\n".encode()
        self._json_auth = self._auth + b"Content-Type: application/json\r\n"
        self.app = app
        self._timeout_s = timeout_s

    async def close(self) -> None:
        """Close the kept-alive request connections (the session is its owner's to close)."""
        await self._http.close()

    @property
    def base_url(self) -> str:
        return self._base

    def events_url(self) -> str:
        ws = self._base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        # subscribeAll: hook mode follows channels and bridges that are not in the app.
        every = "&subscribeAll=true" if self.subscribe_all else ""
        return f"{ws}/events?app={_q(self.app)}{every}"

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._headers

    async def request(
        self, method: str, path: str, params: Params | None = None, body: Any = None
    ) -> Any:
        """`body`: a JSON body, for the one operation whose parameter is the body (eventFilter);
        every other parameter goes in the query."""
        # The target is built here, already encoded (every id and value through `_q`).
        target = "/ari" + path
        if params:
            target += "?" + "&".join(f"{k}={_q(_param(v))}" for k, v in params.items())
        data = None if body is None else json.dumps(body).encode()
        try:
            resp = await self._http.request(
                method, target, self._auth if data is None else self._json_auth, data,
                self._timeout_s)
        except OSError as exc:  # refused, reset, closed, unreadable, TimeoutError: not there
            raise AriError(0, f"{type(exc).__name__}: {exc}", method, path) from exc
        status, raw = resp.status, resp.body
        if status >= 400:
            raise AriError(status, _message(_text(raw)), method, path)
        if not raw:  # most requests: 204
            return None
        if resp.content_type != "application/json":
            return _text(raw)
        return json.loads(raw)

    async def stream(self, path: str) -> AsyncIterator[bytes]:
        """Stream a binary resource (a stored recording's file) in chunks."""
        try:
            async with self._session.get(
                self._base + path, headers=self._headers, timeout=aiohttp.ClientTimeout(total=None)
            ) as resp:
                if resp.status >= 400:
                    raise AriError(resp.status, _message(await resp.text()), "GET", path)
                async for chunk in resp.content.iter_chunked(1 << 16):
                    yield chunk
        except aiohttp.ClientError as exc:
            raise AriError(0, f"{type(exc).__name__}: {exc}", "GET", path) from exc

    # --- asterisk ---
    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/asterisk/info")
        return result

    # --- sounds ---
    async def sound(self, sound_id: str) -> dict[str, Any]:
        """A sound Asterisk can play (`verbatim/consent`); 404 when it has no such file."""
        result: dict[str, Any] = await self.request("GET", f"/sounds/{_q(sound_id)}")
        return result

    # --- channels ---
    async def channels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", "/channels")
        return result

    async def channel(self, channel_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/channels/{_q(channel_id)}")
        return result

    async def channel_linked(self, channel_id: str) -> None:
        """AriError 404 once the channel's hang-up has begun. GET /channels/{id} reads the
        snapshot cache, which keeps a channel until its destructor runs, and a snoop holds
        its spied channel until the snoop itself is gone (res_stasis_snoop.c spyee_chan): a
        channel variable is read through ast_channel_get_by_name, which stops finding it as
        ast_hangup unlinks it (resource_channels.c ast_ari_channels_get_channel_var)."""
        await self.request("GET", f"/channels/{_q(channel_id)}/variable",
                           {"variable": "CHANNEL(state)"})

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_q(channel_id)}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{_q(channel_id)}", {"reason": reason})

    async def create_channel(
        self, channel_id: str, endpoint: str, app_args: str, originator: str | None
    ) -> dict[str, Any]:
        params: dict[str, str] = {
            "endpoint": endpoint,
            "app": self.app,
            "appArgs": app_args,
            "channelId": channel_id,
        }
        if originator:
            params["originator"] = originator
        result: dict[str, Any] = await self.request("POST", "/channels/create", params)
        return result

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, priority: int
    ) -> None:
        # Empty values are left out: the channel then goes on at its next priority.
        params: dict[str, str | int] = {
            "context": context, "extension": extension, "priority": priority,
        }
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/continue",
            {k: v for k, v in params.items() if v},
        )

    async def originate(
        self, channel_id: str, endpoint: str, app_args: str, originator: str | None,
        timeout_s: int,
    ) -> None:
        params: dict[str, str | int] = {
            "endpoint": endpoint,
            "app": self.app,
            "appArgs": app_args,
            "channelId": channel_id,
            "timeout": timeout_s,
        }
        if originator:
            params["originator"] = originator
        await self.request("POST", "/channels", params)

    async def dial(self, channel_id: str, caller: str, timeout_s: int) -> None:
        await self.request(
            "POST", f"/channels/{_q(channel_id)}/dial", {"caller": caller, "timeout": timeout_s}
        )

    async def play(self, channel_id: str, playback_id: str, media: str) -> None:
        await self.request(
            "POST", f"/channels/{_q(channel_id)}/play/{_q(playback_id)}", {"media": media}
        )

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{_q(playback_id)}")

    # --- bridges ---
    async def bridges(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", "/bridges")
        return result

    async def create_bridge(self, bridge_id: str, name: str) -> None:
        await self.request("POST", f"/bridges/{_q(bridge_id)}", {"type": "mixing", "name": name})

    async def add_channel(self, bridge_id: str, channel_id: str) -> None:
        await self.request("POST", f"/bridges/{_q(bridge_id)}/addChannel", {"channel": channel_id})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{_q(bridge_id)}")

    async def record_bridge(self, bridge_id: str, name: str, fmt: str) -> None:
        # ifExists=fail: a name collision must never overwrite evidence.
        await self.request(
            "POST",
            f"/bridges/{_q(bridge_id)}/record",
            {"name": name, "format": fmt, "ifExists": "fail"},
        )

    async def subscribe_everything(self) -> None:
        """Every channel's and bridge's events, for hook mode. subscribeAll on the WebSocket is
        applied only when Asterisk creates the app; an app still held by channels (e.g. after
        a reconnect) keeps what it had, so the subscription is asked for explicitly."""
        await self.request("POST", f"/applications/{_q(self.app)}/subscription",
                           {"eventSource": "channel:,bridge:"})

    async def filter_events(self, disallowed: Iterable[str]) -> None:
        """Asterisk is not to send the app these event types at all (it would build, send and
        the daemon decode them, only to skip them). Kept by the app while it exists."""
        await self.request("PUT", f"/applications/{_q(self.app)}/eventFilter",
                           body={"disallowed": [{"type": t} for t in sorted(disallowed)]})

    async def snoop(self, channel_id: str, snoop_id: str, app_args: str) -> None:
        """A Snoop channel hearing both directions of `channel_id`, into our app."""
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/snoop",
            {"spy": "both", "app": self.app, "appArgs": app_args, "snoopId": snoop_id},
        )

    async def record_channel(self, channel_id: str, name: str, fmt: str) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/record",
            {"name": name, "format": fmt, "ifExists": "fail"},
        )

    async def playback(self, playback_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/playbacks/{_q(playback_id)}")
        return result

    # --- recordings ---
    async def live_recording(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/recordings/live/{_q(name)}")
        return result

    async def pause_recording(self, name: str, pause: bool) -> None:
        await self.request("POST" if pause else "DELETE", f"/recordings/live/{_q(name)}/pause")

    async def stop_recording(self, name: str) -> None:
        await self.request("POST", f"/recordings/live/{_q(name)}/stop")

    async def stored_recordings(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", "/recordings/stored")
        return result

    async def stored_recording(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/recordings/stored/{_q(name)}")
        return result

    def stored_file(self, name: str) -> AsyncIterator[bytes]:
        return self.stream(f"/recordings/stored/{_q(name)}/file")

    async def delete_stored(self, name: str) -> None:
        await self.request("DELETE", f"/recordings/stored/{_q(name)}")


def _param(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")  # ARI speaks UTF-8


def _message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(body, dict):
        # {"message": ...} from ast_ari_response_error; {"error": "Allocation failed"} is
        # res_ari.c's answer when a request could not be carried out (an endpoint that is
        # not configured, for one)
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return text.strip()[:200]
