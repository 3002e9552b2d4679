"""The API's handlers: parse → permission check (a named Permission) → service → serialize.

Errors are raised (errors.ApiError) and rendered by errors.error_middleware; nothing here builds
an error response or touches SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import structlog
from aiohttp import web

from recorder.api import params
from recorder.api.access_log import AccessLog, Origin, PlaybackTracker, parse_access_query
from recorder.api.auth import Permission, principal_of, require
from recorder.api.controls import ControlService, answer, control_id, read_control, state_json
from recorder.api.errors import ApiError, not_found, unauthenticated
from recorder.api.openapi import openapi_document
from recorder.api.search import parse_search
from recorder.api.serialize import detail_json, json_ok, page_json
from recorder.api.service import AudioFile, CallService
from recorder.api.users import UserStore
from recorder.config import HttpConfig
from recorder.keeping.holds import Holds
from recorder.storage.objects import RangeNotSatisfiable


@dataclass(frozen=True)
class Deps:
    """Everything the handlers use, built once by server.build_deps."""

    users: UserStore
    calls: CallService
    controls: ControlService
    access_log: AccessLog
    playback: PlaybackTracker
    http: HttpConfig
    region: str  # calls.default_region: how numbers without +country are read
    departments: tuple[str, ...]  # configured ones, offered by the page's search form
    holds: Holds  # legal holds (recorder/api/holds.py)
    zone: str = "UTC"  # the policy's time_zone: a hold's bare dates are the firm's days


log = structlog.get_logger(__name__)

DEPS: Final = web.AppKey("verbatim_deps", Deps)
MEDIA_TYPES: Final = {
    "wav": "audio/wav",
    "gsm": "audio/x-gsm",
    "ulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
    "sln16": "audio/L16;rate=16000",
    "opus": "audio/ogg",  # storage.compact's copies (Opus in Ogg, MP3)
    "mp3": "audio/mpeg",
}


# What call ids (CHECK in 0001) and recording names (the daemon's <call_id>-sN, the archive's
# safe components) look like. Anything else cannot exist: 404 without asking the database.
_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_RECORDING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


def path_id(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    pattern, what = (_CALL_ID, "call") if key == "call_id" else (_RECORDING_NAME, "recording")
    if not pattern.fullmatch(value) or ".." in value:
        raise not_found(what, **{key: value[:200]})
    return value


def deps(request: web.Request) -> Deps:
    return request.app[DEPS]


def origin(request: web.Request) -> Origin:
    """Who asks, for the access log. A User-Agent that is not printable UTF-8 is refused (400)
    rather than stored altered or left out: the row keeps what the client said it was."""
    agent = request.headers.get("User-Agent")
    if agent is not None and not params.printable(agent):
        raise ApiError(400, "invalid_header", "the User-Agent header must be printable UTF-8",
                       {"header": "User-Agent"})  # fmt: skip
    return Origin(request.remote, agent)


async def search_calls(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.CALLS_SEARCH)
    query = parse_search(request.query, deps(request).region)
    page = await deps(request).calls.search(principal, query, origin(request))
    return json_ok(page_json(page))


async def call_detail(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.CALLS_READ)
    call_id = path_id(request, "call_id")
    detail = await deps(request).calls.detail(principal, call_id, origin(request))
    return json_ok(detail_json(detail))


async def recording_audio(request: web.Request) -> web.StreamResponse:
    return await _send_recording(request, Permission.RECORDINGS_PLAY, "play")


async def recording_download(request: web.Request) -> web.StreamResponse:
    return await _send_recording(request, Permission.RECORDINGS_DOWNLOAD, "download")


async def request_control(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.CALLS_CONTROL)
    call_id = path_id(request, "call_id")
    ask = await read_control(request, principal)
    found = await deps(request).controls.request(principal, call_id, ask, origin(request))
    return answer(*found, ask.action)


async def control_state(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.CALLS_CONTROL)
    state = await deps(request).controls.read(principal, control_id(request), origin(request))
    return json_ok(state_json(state))


async def access_log(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.ACCESS_LOG_READ)
    query = parse_access_query(request.query)
    rows, cursor = await deps(request).access_log.read(principal, query, origin(request))
    return json_ok({"entries": rows, "next_cursor": cursor})


async def me(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    if principal is None:
        raise unauthenticated()
    return json_ok(
        {
            "name": principal.name,
            "role": principal.role,
            "departments": list(principal.departments),
            "extension": principal.extension,
            "permissions": sorted(p.value for p in Permission if principal.may(p)),
        }
    )


async def openapi(request: web.Request) -> web.StreamResponse:
    return json_ok(openapi_document())


def range_start(request: web.Request) -> tuple[bool, int | None]:
    """(whether the Range header is usable, the first byte asked for or None without one).
    aiohttp answers a malformed Range with 416 and sends nothing, so nothing is logged."""
    if "Range" not in request.headers:
        return True, None
    try:
        start = request.http_range.start
    except ValueError:
        return False, None
    return True, -1 if start is None else start  # None here: a suffix range ("bytes=-500")


async def _send_recording(
    request: web.Request, permission: Permission, action: str
) -> web.StreamResponse:
    principal = require(request, permission)
    call_id, name = path_id(request, "call_id"), path_id(request, "name")
    d = deps(request)
    audio = await d.calls.audio_file(principal, call_id, name, action, origin(request))
    usable, start = range_start(request)
    key = (audio.asterisk_id, audio.name)
    if (
        request.method == "GET"
        and usable
        and d.playback.starts_playback(principal, action, key, start)
    ):
        await d.access_log.record(
            principal,
            action,
            origin(request),
            call_id=audio.call_id,
            asterisk_id=audio.asterisk_id,
            recording_name=audio.name,
            detail={"range": request.headers.get("Range")},
        )
        d.playback.logged(principal, action, key)
    attachment = action == "download"
    if audio.sealed is not None:
        return await _decrypted_response(request, d.calls, audio, usable, attachment=attachment)
    if audio.key is not None:
        return await _object_response(request, d.calls, audio, usable, attachment=attachment)
    assert audio.path is not None
    return web.FileResponse(audio.path, headers=_audio_headers(audio, attachment))


def _audio_headers(audio: AudioFile, attachment: bool) -> dict[str, str]:
    filename = re.sub(r"[^A-Za-z0-9._+-]", "_", f"{audio.name}.{audio.format}")
    disposition = "attachment" if attachment else "inline"
    return {
        "Content-Type": MEDIA_TYPES.get(audio.format, "application/octet-stream"),
        "Content-Disposition": f'{disposition}; filename="{filename}"',
    }


async def _object_response(
    request: web.Request, calls: CallService, audio: AudioFile, usable: bool, *,
    attachment: bool,
) -> web.StreamResponse:  # fmt: skip
    """The recording from the object store, streamed; the store answers the Range itself."""
    assert audio.key is not None and calls.objects is not None
    if not usable:
        raise web.HTTPRequestRangeNotSatisfiable()  # as FileResponse answers a malformed Range
    try:
        part = await calls.objects.get(audio.key, request.headers.get("Range"))
    except FileNotFoundError:
        log.error("recording.unservable", call_id=audio.call_id, recording=audio.name)
        raise ApiError(404, "recording_file_missing",
                       f"the file of recording {audio.name} is not in the object store",
                       {"call_id": audio.call_id, "name": audio.name}) from None  # fmt: skip
    except RangeNotSatisfiable:
        raise web.HTTPRequestRangeNotSatisfiable() from None
    headers = {**_audio_headers(audio, attachment), "Accept-Ranges": "bytes",
               "Content-Length": str(part.length)}  # fmt: skip
    if part.content_range:
        headers["Content-Range"] = part.content_range
    response = web.StreamResponse(status=part.status, headers=headers)
    if request.method == "HEAD":
        part.close()
        await response.prepare(request)
        return response
    try:
        await response.prepare(request)
        async for chunk in part.chunks():
            await response.write(chunk)
    finally:
        part.close()  # also when the client went away mid-stream
    await response.write_eof()
    return response


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The [start, stop) an HTTP Range header asks for within `size` bytes (None: no Range,
    all of it); 416 for one that is malformed or outside them, as FileResponse answers."""
    if "Range" not in request.headers:
        return None
    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    try:
        asked = request.http_range
    except ValueError:
        raise unsatisfiable from None
    start, stop = asked.start, asked.stop
    if start is None:
        return None
    if start < 0:  # a suffix: the last -start bytes
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        raise unsatisfiable
    return start, stop


async def _decrypted_response(
    request: web.Request, calls: CallService, audio: AudioFile, usable: bool, *,
    attachment: bool,
) -> web.StreamResponse:  # fmt: skip
    """An encrypted recording, decrypted as it is sent; a Range is answered exactly (the bytes
    before it are decrypted and dropped: recordings are a few MB)."""
    stored = str(audio.path) if audio.path is not None else audio.key
    assert stored is not None and audio.size is not None
    if not usable:
        raise web.HTTPRequestRangeNotSatisfiable()
    asked = byte_range(request, audio.size)
    start, stop = asked or (0, audio.size)
    headers = {**_audio_headers(audio, attachment), "Accept-Ranges": "bytes",
               "Content-Length": str(stop - start)}  # fmt: skip
    if asked is not None:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{audio.size}"
    response = web.StreamResponse(status=206 if asked else 200, headers=headers)
    chunks = calls.plaintext(stored, audio.sealed, start, stop)
    try:
        first = await anext(chunks, b"")  # a file gone or undecryptable fails before the headers
    except FileNotFoundError:
        log.error("recording.unservable", call_id=audio.call_id, recording=audio.name)
        raise ApiError(404, "recording_file_missing",
                       f"the file of recording {audio.name} is not in the archive",
                       {"call_id": audio.call_id, "name": audio.name}) from None  # fmt: skip
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
    finally:
        await chunks.aclose()  # also when the client went away mid-stream: the file closes
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/calls", search_calls)
    app.router.add_get("/api/calls/{call_id}", call_detail)
    app.router.add_get("/api/calls/{call_id}/recordings/{name}/audio", recording_audio)
    app.router.add_get("/api/calls/{call_id}/recordings/{name}/download", recording_download)
    app.router.add_post("/api/calls/{call_id}/controls", request_control)
    app.router.add_get("/api/controls/{control_id}", control_state)
    app.router.add_get("/api/access-log", access_log)
