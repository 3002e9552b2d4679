"""/recordings, /playbacks, /sounds, /asterisk and /applications handlers (res/ari/resource_*.c)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from .clock import format_timestamp
from .engine import Engine
from .model import ASTERISK_VERSION, LiveRecording
from .rest import ApiResponse, Args, error, no_content, ok, route


# ------------------------------------------------------------------ recordings
def _live(sim: Engine, args: Args) -> LiveRecording | ApiResponse:
    rec = sim.recordings.get(args.get_str("recordingName") or "")
    return rec if rec is not None else error(404, "Recording not found")


@route("GET /recordings/live/{recordingName}")
def get_live(sim: Engine, args: Args) -> ApiResponse:
    rec = _live(sim, args)
    return ok(rec.json()) if isinstance(rec, LiveRecording) else rec


def _operation(sim: Engine, args: Args, op: str) -> ApiResponse:
    """stasis_app_recording_operation: which operations each state allows (else 409)."""
    rec = _live(sim, args)
    if isinstance(rec, ApiResponse):
        return rec
    if rec.state == "queued":
        if op in ("cancel", "stop"):
            sim.recorder.end_recording(rec, delete=op == "cancel")
            return no_content()
        return error(409, "Recording not in session")
    if op == "stop":
        sim.recorder.end_recording(rec)
    elif op == "cancel":
        sim.recorder.end_recording(rec, delete=True)
    elif op in ("pause", "unpause"):
        sim.recorder.pause_recording(rec, op == "pause")
    elif op in ("mute", "unmute"):
        rec.muted = op == "mute"
    return no_content()


# Live recording operations: stasis_app_recording_operation decides per state (else 409).
_OPERATIONS = {
    "DELETE /recordings/live/{recordingName}": "cancel",
    "POST /recordings/live/{recordingName}/stop": "stop",
    "POST /recordings/live/{recordingName}/pause": "pause",
    "DELETE /recordings/live/{recordingName}/pause": "unpause",
    "POST /recordings/live/{recordingName}/mute": "mute",
    "DELETE /recordings/live/{recordingName}/mute": "unmute",
}


def _operation_handler(op: str) -> Callable[[Engine, Args], ApiResponse]:
    return lambda sim, args: _operation(sim, args, op)


for _key, _op in _OPERATIONS.items():
    route(_key)(_operation_handler(_op))


@route("GET /recordings/stored")
def list_stored(sim: Engine, args: Args) -> ApiResponse:
    return ok(sim.recorder.stored_recordings())


def _stored_json(sim: Engine, name: str) -> dict[str, str] | None:
    path = sim.recorder.find_stored(name)
    return {"name": name, "format": path.suffix[1:]} if path is not None else None


@route("GET /recordings/stored/{recordingName}")
def get_stored(sim: Engine, args: Args) -> ApiResponse:
    found = _stored_json(sim, args.get_str("recordingName") or "")
    return ok(found) if found else error(404, "Recording not found")


@route("DELETE /recordings/stored/{recordingName}")
def delete_stored(sim: Engine, args: Args) -> ApiResponse:
    path = sim.recorder.find_stored(args.get_str("recordingName") or "")
    if path is None:
        return error(404, "Recording not found")
    path.unlink()
    return no_content()


@route("GET /recordings/stored/{recordingName}/file")
def get_stored_file(sim: Engine, args: Args) -> ApiResponse:
    path = sim.recorder.find_stored(args.get_str("recordingName") or "")
    if path is None:
        return error(404, "Recording not found")
    return ApiResponse(200, raw=path.read_bytes(), content_type=f"audio/{path.suffix[1:]}")


@route("POST /recordings/stored/{recordingName}/copy")
def copy_stored(sim: Engine, args: Args) -> ApiResponse:
    path = sim.recorder.find_stored(args.get_str("recordingName") or "")
    if path is None:
        return error(404, "Recording not found")
    dest = args.get_str("destinationRecordingName") or ""
    if "." in dest.rsplit("/", 1)[-1]:
        dest = dest.rsplit(".", 1)[0]
    if not dest:
        return error(400, "Invalid destination recording name")
    if sim.recorder.name_escapes(dest):
        return error(403, "Destination file path is forbidden")
    if sim.recorder.find_stored(dest) is not None:
        return error(409, "A recording with the same name already exists on the system")
    target = sim.spool_dir / f"{dest}{path.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return ok({"name": dest, "format": path.suffix[1:]})


# ------------------------------------------------------------------- playbacks
@route("GET /playbacks/{playbackId}")
def get_playback(sim: Engine, args: Args) -> ApiResponse:
    pb = sim.playbacks.get(args.get_str("playbackId") or "")
    return ok(pb.json()) if pb else error(404, "Playback not found")


@route("DELETE /playbacks/{playbackId}")
def stop_playback(sim: Engine, args: Args) -> ApiResponse:
    pb = sim.playbacks.get(args.get_str("playbackId") or "")
    if pb is None:
        return error(404, "Playback not found")
    sim.player.stop_playback(pb)
    return no_content()


@route("POST /playbacks/{playbackId}/control")
def control_playback(sim: Engine, args: Args) -> ApiResponse:
    operation = args.get_str("operation")
    if not operation:
        return error(400, "Missing operation")
    if operation not in ("restart", "pause", "unpause", "reverse", "forward"):
        return error(400, f"Invalid operation {operation}")
    pb = sim.playbacks.get(args.get_str("playbackId") or "")
    if pb is None:
        return error(404, "Playback not found")
    if not sim.player.control_playback(pb, operation):
        return error(409, f"Can only {operation} while media is playing")
    return no_content()


# ---------------------------------------------------------------------- sounds
@route("GET /sounds/{soundId}")
def get_sound(sim: Engine, args: Args) -> ApiResponse:
    """resource_sounds.c ast_ari_sounds_get: the Sound of a file Asterisk has (its id is the
    path under sounds/<language>/, e.g. `verbatim/consent`, %2F-encoded in the URL: res_ari.c
    decodes each path segment), else 404. The simulator's sounds are WAV (format slin) in the
    default language and have no description (no `text`)."""
    sound_id = args.get_str("soundId") or ""
    if sound_id not in sim.dialplan.sounds and sound_id not in sim.dialplan.dialplan_sounds:
        return error(404, "Sound not found")
    return ok({"id": sound_id, "formats": [{"language": "en", "format": "slin"}]})


# -------------------------------------------------------------------- asterisk
@route("GET /asterisk/info")
def info(sim: Engine, args: Args) -> ApiResponse:
    started = format_timestamp(sim.clock.start_epoch)
    full = {
        "build": {"os": "Linux", "kernel": "6.1.0", "options": "", "machine": "x86_64",
                  "date": "2026-08-06 15:45:38 UTC", "user": "arisim"},
        "system": {"version": ASTERISK_VERSION, "entity_id": sim.asterisk_id},
        "config": {"name": "", "default_language": "en",
                   "setid": {"user": "asterisk", "group": "asterisk"}},
        "status": {"startup_time": started, "last_reload_time": started},
    }
    only = [o for o in args.get_list("only") if o]
    return ok({k: v for k, v in full.items() if not only or k in only})


@route("GET /asterisk/ping")
def ping(sim: Engine, args: Args) -> ApiResponse:
    return ok({"asterisk_id": sim.asterisk_id, "ping": "pong",
               "timestamp": sim.clock.timestamp()})


# ---------------------------------------------------------------- applications
def _application(sim: Engine, name: str) -> dict[str, object]:
    state = sim.hub.apps.get(name)
    return {
        "name": name,
        "channel_ids": sorted(c.id for c in sim.live_channels() if name in c.subscribers()),
        "bridge_ids": sorted(b.id for b in sim.bridges.values()
                             if not b.destroyed and name in b.subscribed_apps),
        "endpoint_ids": [],
        "device_names": [],
        "events_allowed": list((state and state.events_allowed) or []),
        "events_disallowed": list((state and state.events_disallowed) or []),
    }


@route("GET /applications")
def list_applications(sim: Engine, args: Args) -> ApiResponse:
    return ok([_application(sim, n) for n in sorted(sim.hub.apps) if sim.hub.active(n)])


@route("GET /applications/{applicationName}")
def get_application(sim: Engine, args: Args) -> ApiResponse:
    name = args.get_str("applicationName") or ""
    if not sim.hub.active(name):
        return error(404, "Application not found")
    return ok(_application(sim, name))


@route("POST /applications/{applicationName}/subscription")
def subscribe(sim: Engine, args: Args) -> ApiResponse:
    """res/ari/resource_applications.c ast_ari_applications_subscribe: `eventSource` is a
    comma-separated list of channel:{id}, bridge:{id} (no id: every channel / bridge)."""
    name = args.get_str("applicationName") or ""
    sources = [s for s in args.get_list("eventSource") if s]
    if not sources:
        return error(400, "Missing parameter eventSource")
    if name not in sim.hub.apps:
        return error(404, "Application not found")
    for uri in sources:
        scheme, sep, ident = uri.partition(":")
        if not sep or scheme not in ("channel", "bridge", "endpoint", "deviceState"):
            return error(400, "Invalid event source URI scheme")
        if not ident:
            if scheme in ("channel", "bridge"):
                sim.hub.subscribe_everything(name)
            continue
        if scheme == "channel":
            ch = sim.find_channel(ident)
            if ch is None:
                return error(422, "Event source does not exist")
            ch.explicit_apps.add(name)
        elif scheme == "bridge":
            bridge = sim.find_bridge(ident)
            if bridge is None:
                return error(422, "Event source does not exist")
            bridge.subscribed_apps.add(name)
        else:
            return error(422, "Event source does not exist")
    return ok(_application(sim, name))


@route("PUT /applications/{applicationName}/eventFilter")
def event_filter(sim: Engine, args: Args) -> ApiResponse:
    """res/ari/resource_applications.c ast_ari_applications_filter → res/stasis/app.c
    stasis_app_event_filter_set: the body is the filter. No body or {}: both lists cleared; an
    object sets the lists it names ("allowed", "disallowed"), leaving the other; a list (not an
    object) is taken for both. Every entry needs a "type"; anything else is 400."""
    name = args.get_str("applicationName") or ""
    state = sim.hub.apps.get(name)
    if state is None:
        return error(404, "Application not found")
    body = args.raw_body
    lists: dict[str, Any] = {}
    for kind in ("disallowed", "allowed"):
        value: Any = body
        if isinstance(body, dict):
            if not body:
                value = None
            elif kind not in body:
                continue
            else:
                value = body[kind]
        if value is not None and (not isinstance(value, list) or not all(
                isinstance(f, dict) and isinstance(f.get("type"), str) and f["type"]
                for f in value)):
            return error(400, "Invalid format definition")
        lists[kind] = value
    if "disallowed" in lists:
        state.events_disallowed = lists["disallowed"]
    if "allowed" in lists:
        state.events_allowed = lists["allowed"]
    return ok(_application(sim, name))
