"""/bridges handlers, with the checks and messages of res/ari/resource_bridges.c."""

from __future__ import annotations

from .engine import Engine
from .model import Bridge, Channel
from .recordings import KNOWN_FORMATS
from .rest import (
    ApiResponse,
    Args,
    error,
    no_content,
    ok,
    route,
)
from .rest_channels import queue_playback, start_recording


def find_bridge(sim: Engine, bridge_id: str) -> Bridge | ApiResponse:
    """resource_bridges.c find_bridge: 404 if unknown, 409 if not a Stasis bridge (a basic
    bridge of Dial() exists but is not the application's)."""
    bridge = sim.find_bridge(bridge_id)
    if bridge is None:
        return error(404, "Bridge not found")
    if bridge.bridge_class != "stasis":
        return error(409, "Bridge not in Stasis application")
    return bridge


def control_list(sim: Engine, args: Args) -> list[Channel] | ApiResponse:
    """control_list_create: 400 "Channel not found" / 422 "Channel not in Stasis application"."""
    ids = [c for c in args.get_list("channel") if c]
    if not ids:
        return error(400, "Missing parameter channel")
    out: list[Channel] = []
    for cid in ids:
        ch = sim.find_channel(cid)
        if ch is None:
            return error(400, "Channel not found")
        if not ch.in_stasis:
            return error(422, "Channel not in Stasis application")
        out.append(ch)
    return out


@route("GET /bridges")
def list_bridges(sim: Engine, args: Args) -> ApiResponse:
    return ok([b.json() for b in sim.bridges.values() if not b.destroyed])


@route("POST /bridges")
def create(sim: Engine, args: Args) -> ApiResponse:
    bridge_id = args.get_str("bridgeId")
    if bridge_id and sim.find_bridge(bridge_id) is not None:
        return error(409, f"Bridge with id '{bridge_id}' already exists")
    bridge = sim.bridging.create_bridge(args.get_str("type"), args.get_str("name"),
                                        bridge_id or None)
    if bridge is None:
        return error(500, "Unable to create bridge. Possible duplicate bridge id "
                          f"'{bridge_id or '(null)'}'")
    return ok(bridge.json())


@route("POST /bridges/{bridgeId}")
def create_with_id(sim: Engine, args: Args) -> ApiResponse:
    bridge_id = args.get_str("bridgeId") or ""
    if sim.find_bridge(bridge_id) is not None:
        return error(409, f"Bridge with id '{bridge_id}' already exists")
    bridge = sim.bridging.create_bridge(args.get_str("type"), args.get_str("name"), bridge_id)
    if bridge is None:
        return error(500, "Unable to create bridge")
    return ok(bridge.json())


@route("GET /bridges/{bridgeId}")
def get_bridge(sim: Engine, args: Args) -> ApiResponse:
    """Any bridge's snapshot (ast_bridge_get_snapshot_by_uniqueid), basic ones included."""
    found = sim.find_bridge(args.get_str("bridgeId") or "")
    return ok(found.json()) if found is not None else error(404, "Bridge not found")


@route("DELETE /bridges/{bridgeId}")
def destroy(sim: Engine, args: Args) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    if isinstance(found, ApiResponse):
        return found
    sim.bridging.destroy_bridge(found)
    return no_content()


@route("POST /bridges/{bridgeId}/addChannel")
def add_channel(sim: Engine, args: Args) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    if isinstance(found, ApiResponse):
        return found
    channels = control_list(sim, args)
    if isinstance(channels, ApiResponse):
        return channels
    for ch in channels:
        if any(r.kind == "channel" and r.target_id == ch.id for r in sim.recordings.values()):
            return error(409, f"Channel {ch.id} currently recording")
    for ch in channels:
        if args.get_bool("mute"):
            ch.muted_in = True
        sim.bridging.bridge_add(found, ch)
    return no_content()


@route("POST /bridges/{bridgeId}/removeChannel")
def remove_channel(sim: Engine, args: Args) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    if isinstance(found, ApiResponse):
        return found
    channels = control_list(sim, args)
    if isinstance(channels, ApiResponse):
        return channels
    if any(ch.bridge_id != found.id for ch in channels):
        return error(422, "Channel not in this bridge")
    for ch in channels:
        sim.bridging.bridge_remove(found, ch)
    return no_content()


def _play(sim: Engine, args: Args, playback_id: str | None) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    if isinstance(found, ApiResponse):
        return found
    return queue_playback(sim, found, args, playback_id, "Failed to queue playback")


def play(sim: Engine, args: Args) -> ApiResponse:
    return _play(sim, args, args.get_str("playbackId"))


for _key in ("POST /bridges/{bridgeId}/play", "POST /bridges/{bridgeId}/play/{playbackId}"):
    route(_key)(play)


@route("POST /bridges/{bridgeId}/record")
def record(sim: Engine, args: Args) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    if isinstance(found, ApiResponse):
        return found
    if (args.get_str("format") or "") not in KNOWN_FORMATS:
        return error(422, "specified format is unknown on this system")
    return start_recording(sim, "bridge", found.id, args)


@route("POST /bridges/{bridgeId}/moh")
def start_moh(sim: Engine, args: Args) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    return found if isinstance(found, ApiResponse) else no_content()


@route("DELETE /bridges/{bridgeId}/moh")
def stop_moh(sim: Engine, args: Args) -> ApiResponse:
    found = find_bridge(sim, args.get_str("bridgeId") or "")
    return found if isinstance(found, ApiResponse) else error(409, "Bridge isn't playing music")
