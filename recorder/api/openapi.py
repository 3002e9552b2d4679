"""The OpenAPI 3.0 document served at /api/openapi.json (a stable path: scripts and the
schemathesis tests read it). Written by hand next to the handlers; tests run it against the
live API with every role, so a drift between the two shows up as a failing check."""

from __future__ import annotations

import functools
from typing import Any

from recorder.api.access_log import ACCESS_ACTIONS
from recorder.api.controls import MAX_BODY
from recorder.api.params import MAX_LIMIT
from recorder.api.search import MAX_DURATION_S, ORDERS
from recorder.common.direction import DIRECTIONS
from recorder.common.tags import MAX_TAG
from recorder.db import controls
from recorder.db.rows import OUTCOMES
from recorder.keeping import holds

_S = {"type": "string"}
_NS = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": "string", "format": "date-time", "nullable": True}
_NINT = {"type": "integer", "nullable": True}


def _obj(props: dict[str, Any], *, extra: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(props),
        "properties": props,
        "additionalProperties": extra,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}  # fmt: skip


_ERROR_TEXT = {
    400: "Bad parameter. (A request line or header too long for the HTTP parser, 8 KiB, is "
         "refused before the API sees it, in text/plain.)",
    401: "Not authenticated", 403: "Role lacks the permission",
    404: "Not found, or outside your scope", 409: "Conflict", 413: "Body too large",
    415: "The body must be application/json", 416: "Range not satisfiable",
    502: "The recorder could not carry it out",
    503: "Database unavailable: retry (or, error_id recording_undecryptable: the configured "
         "master key cannot decrypt the recording)",
}  # fmt: skip


def _errors(*statuses: int, texts: dict[int, str] | None = None) -> dict[str, Any]:
    """Error responses; `texts` replace the generic descriptions of some statuses."""
    out: dict[str, Any] = {}
    for s in statuses:
        description = (texts or {}).get(s, _ERROR_TEXT[s])
        if s == 416:
            out["416"] = {"description": description}
            continue
        content: dict[str, Any] = {"application/json": {"schema": _ref("Error")}}
        if s == 400:
            content["text/plain"] = {"schema": _S}
        out[str(s)] = {"description": description, "content": content}
    return out


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_DATE = {"type": "string", "description": "2026-03-01 (that day, UTC) or an ISO 8601 date-time"}
_LIMIT = _q("limit", f"page size, 1..{MAX_LIMIT} (default 50)",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})  # fmt: skip
_CURSOR = _q("cursor", "next_cursor of the previous page", _S)

_SEARCH_PARAMS = [
    _q("from", "calls that started at or after this", _DATE),
    _q("to", "calls that started before this (a date: up to the end of that day)", _DATE),
    _q("extension", "the firm's extension on the call", {"type": "string", "maxLength": 32}),
    _q("number", "a phone number in any common format; a full number matches its E.164 form, "
       "a partial one (3+ digits) any number containing those digits",
       {"type": "string", "maxLength": 40}),
    _q("department", "department name", {"type": "string", "maxLength": 100}),
    _q("direction", "direction of the call", {"type": "string", "enum": list(DIRECTIONS)}),
    _q("outcome", "how the call ended", {"type": "string", "enum": list(OUTCOMES)}),
    _q("min_duration", "at least this many seconds long",
       {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_S}),
    _q("max_duration", "at most this many seconds long",
       {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_S}),
    _q("tag", "a tag or matter number on the call", {"type": "string", "maxLength": 100}),
    _q("case", "a call id: that call and the calls an attended transfer linked to it",
       {"type": "string", "maxLength": 128}),
    _q("order", "by start time: desc (newest first, default) or asc",
       {"type": "string", "enum": list(ORDERS)}),
    _LIMIT,
    _CURSOR,
]  # fmt: skip

_CALL = {
    "call_id": _S, "asterisk_id": _S, "direction": {"type": "string", "enum": list(DIRECTIONS)},
    "caller_number": _NS, "caller_e164": _NS, "callee_number": _NS, "callee_e164": _NS,
    "extension": _NS, "department": _NS, "started_at": _TIME, "answered_at": _NTIME,
    "ended_at": _NTIME, "duration_s": _NINT, "outcome": _NS, "status": _S,
    "fallback": {"type": "boolean"}, "url": _S,
    # calls joined to this one by an attended transfer (the consultation and the original)
    "linked_calls": {"type": "array", "items": _S, "nullable": True},
}  # fmt: skip
_SUMMARY = _CALL | {
    "recordings": {"type": "integer", "description": "filed recordings"},
    "recorded_ms": {"type": "integer"},
    "tags": {"type": "array", "items": _S},
}
_LEG = {
    "channel_id": _S, "channel_name": _S, "role": _S, "caller_name": _NS, "caller_number": _NS,
    "started_at": _TIME, "answered_at": _NTIME, "ended_at": _NTIME, "hangup_cause": _NINT,
    "outcome": _NS,
}  # fmt: skip
_RECORDING = {
    "asterisk_id": _S, "name": _S, "segment": {"type": "integer"}, "format": _S, "status": _S,
    "requested_at": _TIME, "started_at": _NTIME, "ended_at": _NTIME, "duration_ms": _NINT,
    "bytes": _NINT, "sha256": _NS, "error": _NS, "fallback": {"type": "boolean"},
}  # fmt: skip
_EVENT = {"id": {"type": "integer"}, "at": _TIME, "kind": _S, "channel_id": _NS,
          "recording_name": _NS, "detail": {"type": "object"}}  # fmt: skip
_ACCESS = {
    "id": {"type": "integer"}, "at": _TIME, "user_name": _S, "role": _S, "via": _S,
    "action": {"type": "string", "enum": list(ACCESS_ACTIONS)}, "call_id": _NS, "asterisk_id": _NS,
    "recording_name": _NS, "detail": {"type": "object"}, "remote": _NS, "user_agent": _NS,
}  # fmt: skip

_CONTROL_ASK = {
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": list(controls.CONTROL_ACTIONS),
                   "description": "pause/resume the recording, start/stop recording the call, "
                   "or tag the call"},
        "tag": {"type": "string", "minLength": 1, "maxLength": MAX_TAG,
                "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]+$",
                "description": "with action tag only (required there): a tag or matter number, "
                "e.g. matter:2026-0113; no control, format or separator characters"},
    },
    "additionalProperties": False,
}  # fmt: skip
_CONTROL_RESULT = {
    "id": {"type": "integer"},
    "status": {"type": "string", "enum": list(controls.STATUSES)},
    "detail": _NS, "url": _S,
}  # fmt: skip
_CONTROL = _CONTROL_RESULT | {
    "call_id": _S, "action": {"type": "string", "enum": list(controls.CONTROL_ACTIONS)}, "tag": _NS,
    "requested_by": _S, "requested_at": _TIME, "taken_at": _NTIME, "handled_at": _NTIME,
    "call_url": _S,
}  # fmt: skip

_TEXT = {"type": "string", "minLength": 1, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]+$"}
_HOLD_ASK = {
    "type": "object",
    "required": ["name", "reason"],
    "description": "At least one criterion (tag, call_id, number, department, extension, from, "
                   "to); a call is held when every criterion given matches it.",
    "properties": {
        "name": {**_TEXT, "maxLength": holds.MAX_NAME, "description": "e.g. the matter"},
        "reason": {"type": "string", "minLength": 1, "maxLength": holds.MAX_REASON},
        "tag": {**_TEXT, "maxLength": MAX_TAG, "description": "a tag or matter number"},
        "call_id": {"type": "string", "maxLength": 128},
        "number": {"type": "string", "maxLength": 40,
                   "description": "a phone number (either party), as in search"},
        "department": {**_TEXT, "maxLength": 100},
        "extension": {"type": "string", "maxLength": 32},
        "from": {**_DATE, "description": "calls that started at or after"},
        "to": {**_DATE, "description": "calls that started before (a date: its end)"},
    },
    "additionalProperties": False,
}  # fmt: skip
_RELEASE_ASK = {
    "type": "object", "required": ["reason"], "additionalProperties": False,
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": holds.MAX_REASON}},
}  # fmt: skip
_HOLD = {
    "id": {"type": "integer"}, "name": _S, "reason": _S,
    "status": {"type": "string", "enum": list(holds.STATES)},
    "tag": _NS, "call_id": _NS, "number": _NS, "department": _NS, "extension": _NS,
    "from": _NTIME, "to": _NTIME, "created_by": _S, "created_at": _TIME,
    "release_requested_by": _NS, "release_requested_at": _NTIME, "release_reason": _NS,
    "released_by": _NS, "released_at": _NTIME, "release_approval": _NS,
    "url": _S, "call_url": _NS,
}  # fmt: skip
_HOLD_ID = {"name": "hold_id", "in": "path", "required": True, "description": "the hold's id",
            "schema": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}}  # fmt: skip

_SCHEMAS = {
    "Error": _obj({"status": {"type": "integer"}, "error_id": _S, "message": _S,
                   "details": {"type": "object"}}, extra=False),
    "Call": _obj(_SUMMARY),
    "CallFacts": _obj(_CALL),
    "CallPage": _obj({"calls": {"type": "array", "items": _ref("Call")},
                      "next_cursor": _NS}, extra=False),
    "Recording": {**_obj(_RECORDING), "properties": _RECORDING | {
        "audio_url": {**_S, "description": "only for filed recordings"},
        "download_url": {**_S, "description": "only for filed recordings"}}},
    "CallDetail": _obj({
        "call": _ref("CallFacts"),
        "legs": {"type": "array", "items": _obj(_LEG)},
        "recordings": {"type": "array", "items": _ref("Recording")},
        "events": {"type": "array", "items": _obj(_EVENT)},
        "transfers": {"type": "array", "items": _obj(_EVENT),
                      "description": "the events of kind transfer.*"},
        "consent": {"type": "array", "items": {"type": "object"}, "nullable": True,
                    "description": "consent_audit rows; null where consent is not recorded"},
        "tags": {"type": "array", "items": _S},
    }),
    "AccessPage": _obj({"entries": {"type": "array", "items": _obj(_ACCESS)},
                        "next_cursor": _NS}, extra=False),
    "ControlResult": _obj(_CONTROL_RESULT),
    "Control": _obj(_CONTROL),
    "Hold": _obj(_HOLD),
    "HoldList": _obj({"holds": {"type": "array", "items": _ref("Hold")}}, extra=False),
    "Me": _obj({"name": _S, "role": _S, "departments": {"type": "array", "items": _S},
                "extension": _NS, "permissions": {"type": "array", "items": _S}}),
}  # fmt: skip

_AUDIO = {
    "description": "The recording (206 for a Range request)",
    # WAV as filed; Ogg (Opus) or MPEG for a compact copy that replaced it (storage.compact).
    "content": {kind: {"schema": {"type": "string", "format": "binary"}}
                for kind in ("audio/wav", "audio/ogg", "audio/mpeg")},
}
_RANGE = {"name": "Range", "in": "header", "required": False, "schema": _S,
          "description": "bytes=START-[END]; a playback is logged once, not per range"}
_CALL_ID = _path("call_id", "the call's id")
_NAME = _path("name", "the recording's name (see a call's recordings)")


@functools.cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Verbatim call search",
            "version": "1",
            "description": (
                "Find and hear recorded calls, and control live ones. Every search, detail view, "
                "playback, download and control is written to the access log. Calls outside "
                "your role's scope answer 404."
            ),
        },
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": {
            "/api/openapi.json": {"get": {
                "summary": "This document", "security": [], "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3 document",
                                      "content": {"application/json": {}}}}}},
            "/api/me": {"get": {
                "summary": "Who you are and what you may do", "operationId": "me",
                "responses": {"200": _ok("Me", "You"), **_errors(401, 503)}}},
            "/api/calls": {"get": {
                "summary": "Search calls (permission calls.search), newest first",
                "operationId": "searchCalls", "parameters": _SEARCH_PARAMS,
                "responses": {"200": _ok("CallPage", "A page of calls"),
                              **_errors(400, 401, 403, 503)}}},
            "/api/calls/{call_id}": {"get": {
                "summary": "One call: legs, recordings, timeline, transfers, consent (calls.read)",
                "operationId": "getCall", "parameters": [_CALL_ID],
                "responses": {"200": _ok("CallDetail", "The call"),
                              **_errors(400, 401, 403, 404, 503)}}},
            "/api/calls/{call_id}/audio": {"get": {
                "summary": "Stream the whole call as one WAV, its recordings placed as on its "
                           "timeline, with HTTP Range (recordings.play)",
                "operationId": "playCall", "parameters": [_CALL_ID, _RANGE],
                "responses": {"200": _AUDIO, "206": _AUDIO,
                              **_errors(400, 401, 403, 404, 416, 503)}}},
            "/api/calls/{call_id}/recordings/{name}/audio": {"get": {
                "summary": "Stream a recording, with HTTP Range (recordings.play)",
                "operationId": "playRecording", "parameters": [_CALL_ID, _NAME, _RANGE],
                "responses": {"200": _AUDIO, "206": _AUDIO,
                              **_errors(400, 401, 403, 404, 416, 503)}}},
            "/api/calls/{call_id}/recordings/{name}/download": {"get": {
                "summary": "Download a recording as a file (recordings.download)",
                "operationId": "downloadRecording", "parameters": [_CALL_ID, _NAME, _RANGE],
                "responses": {"200": _AUDIO, "206": _AUDIO,
                              **_errors(400, 401, 403, 404, 416, 503)}}},
            "/api/calls/{call_id}/controls": {"post": {
                "summary": "Pause, resume, start or stop the recording of a live call, or tag "
                           "it (calls.control)",
                "description": (
                    "Stored for the recorder that handles the call, which carries it out; the "
                    "answer waits up to 3 s for it. 200: done. 202: not handled yet (see "
                    "`url`; status pending, or taken: being carried out). 409: the call has "
                    "ended (error_id call_ended) or the recorder refused (control_rejected, "
                    "details.detail says why). 502: it could not be carried out "
                    "(control_failed). Written to the access log (action control)."
                ),
                "operationId": "controlCall", "parameters": [_CALL_ID],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _CONTROL_ASK}}},
                "responses": {
                    "200": _ok("ControlResult", "Done"),
                    "202": {**_ok("ControlResult", "Stored; not handled yet"),
                            "headers": {"Location": {"schema": _S,
                                                     "description": "the request's url"}}},
                    **_errors(400, 401, 403, 404, 409, 413, 415, 502, 503, texts={
                        409: "The call has ended, or the recorder refused",
                        413: f"The body is limited to {MAX_BODY} bytes"}),
                }}},
            "/api/controls/{control_id}": {"get": {
                "summary": "A control request and its outcome (calls.control; the call must be "
                           "in your scope)",
                "operationId": "getControl",
                "parameters": [{"name": "control_id", "in": "path", "required": True,
                                "description": "the id a control request answered",
                                "schema": {"type": "integer", "minimum": 1,
                                           "maximum": 10**18 - 1}}],
                "responses": {"200": _ok("Control", "The request"),
                              **_errors(400, 401, 403, 404, 503)}}},
            "/api/access-log": {"get": {
                "summary": "Who searched, viewed, played or downloaded what (access_log.read)",
                "operationId": "accessLog",
                "parameters": [
                    _q("from", "at or after", _DATE), _q("to", "before", _DATE),
                    _q("user", "user name", {"type": "string", "maxLength": 64}),
                    _q("call_id", "call id", {"type": "string", "maxLength": 128}),
                    _q("action", "kind of access",
                       {"type": "string", "enum": list(ACCESS_ACTIONS)}),
                    _LIMIT, _CURSOR,
                ],
                "responses": {"200": _ok("AccessPage", "Newest first"),
                              **_errors(400, 401, 403, 503)}}},
            "/api/holds": {
                "get": {
                    "summary": "Legal holds, newest first (holds.manage)",
                    "operationId": "listHolds",
                    "parameters": [_q("state", "only holds in this state (default all)",
                                      {"type": "string", "enum": [*holds.STATES, "all"]})],
                    "responses": {"200": _ok("HoldList", "The holds"),
                                  **_errors(400, 401, 403, 503)}},
                "post": {
                    "summary": "Place a legal hold (holds.manage): the calls it matches are "
                               "never purged until it is released",
                    "operationId": "placeHold",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": _HOLD_ASK}}},
                    "responses": {
                        "201": {**_ok("Hold", "Placed"),
                                "headers": {"Location": {"schema": _S}}},
                        **_errors(400, 401, 403, 413, 415, 503)}}},
            "/api/holds/{hold_id}": {"get": {
                "summary": "One legal hold (holds.manage)", "operationId": "getHold",
                "parameters": [_HOLD_ID],
                "responses": {"200": _ok("Hold", "The hold"),
                              **_errors(400, 401, 403, 404, 503)}}},
            "/api/holds/{hold_id}/release": {"post": {
                "summary": "Release a legal hold (holds.manage), with a reason",
                "description": (
                    "With the policy's retention.release_needs_two, the first admin's release "
                    "leaves the hold release_pending (it still holds) and a different admin "
                    "approves it with the same request. 409: released already "
                    "(hold_released), or the asking admin tried to approve "
                    "(release_needs_second_admin)."
                ),
                "operationId": "releaseHold", "parameters": [_HOLD_ID],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _RELEASE_ASK}}},
                "responses": {"200": _ok("Hold", "Released, or release_pending"),
                              **_errors(400, 401, 403, 404, 409, 413, 415, 503)}}},
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "a token from `verbatim users token NAME`"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "vb_session",
                               "description": "the web page's session (__Host-vb_session "
                               "over TLS)"},
            },
        },
    }  # fmt: skip
