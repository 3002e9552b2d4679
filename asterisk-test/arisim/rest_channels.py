"""/channels handlers, with the checks and messages of res/ari/resource_channels.c."""

from __future__ import annotations

from typing import Any

from .dialplan import parse_callerid
from .engine import Engine
from .model import HANGUP_REASONS, Bridge, Channel
from .recordings import KNOWN_FORMATS
from .rest import (
    ApiResponse,
    Args,
    created,
    error,
    live_recording_location,
    no_content,
    ok,
    route,
)

MAX_UNIQUEID = 149  # AST_MAX_PUBLIC_UNIQUEID (AST_MAX_UNIQUEID - 1)


def find_control(sim: Engine, channel_id: str) -> Channel | ApiResponse:
    """resource_channels.c find_control: 404 if unknown, 409 if not in Stasis."""
    ch = sim.find_channel(channel_id)
    if ch is None:
        return error(404, "Channel not found")
    if not ch.in_stasis:
        return error(409, "Channel not in Stasis application")
    return ch


def state_invalid(ch: Channel) -> ApiResponse | None:
    """channel_state_invalid: outbound channels not yet answered cannot be manipulated."""
    if ch.state in ("Down", "Rsrved", "Ringing"):
        return error(412, "Channel in invalid state")
    return None


def _variables(args: Args) -> dict[str, str] | ApiResponse:
    """The `variables` body object (json_to_ast_variables)."""
    raw = args.variables()
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, dict):
            if not isinstance(value.get("value"), str):
                return error(400, "Each object value in 'variables' must include string field "
                                  "'value'")
            out[key] = value["value"]
        else:
            return error(400, "Each value in 'variables' must be a string or an object with "
                              "'value' and optional 'report_events'")
    return out


@route("GET /channels")
def list_channels(sim: Engine, args: Args) -> ApiResponse:
    return ok([c.json() for c in sim.live_channels()])


# res_ari.c's oom_json, the answer of create and originate when ast_request finds no such
# endpoint (chan_pjsip answers NULL): not an ast_ari_response_error, so "error", not "message"
ALLOCATION_FAILED = ApiResponse(500, {"error": "Allocation failed"})


def _originate(sim: Engine, args: Args, channel_id: str | None) -> ApiResponse:
    other_id = args.get_str("otherChannelId")
    for uid in (channel_id, other_id):
        if uid and len(uid) > MAX_UNIQUEID:
            return error(400, f"Uniqueid length exceeds maximum of {MAX_UNIQUEID}")
    endpoint = args.get_str("endpoint") or ""
    if not endpoint:
        return error(400, "Endpoint must be specified")
    if args.get_str("originator") and args.get_str("formats"):
        return error(400, "Originator and formats can't both be specified")
    tech, _, resource = endpoint.partition("/")
    if not tech or not resource:
        return error(400, "Invalid endpoint specified")
    app, extension = args.get_str("app"), args.get_str("extension")
    if not app and not extension:
        return error(400, "Application or extension must be specified")
    originator = args.get_str("originator")
    if originator and sim.find_channel(originator) is None:
        return error(400, "Provided originator channel was not found")
    if sim.dialplan.not_configured(endpoint):  # ast_dial_prerun: ast_request failed
        return ALLOCATION_FAILED
    for uid in (channel_id, other_id):
        if uid and sim.id_in_use(uid):
            return error(409, "Channel with given unique ID already exists")
    variables = _variables(args)
    if isinstance(variables, ApiResponse):
        return variables
    timeout = args.get_int("timeout", 30)
    timeout = 30 if timeout == 0 else (0 if timeout < 0 else timeout)
    cid = args.get_str("callerId")
    ch = sim.dialling.originate(
        endpoint,
        app=app or None,
        app_args=args.get_str("appArgs"),
        context=args.get_str("context"),
        extension=extension,
        priority=args.get_int("priority", 1) or 1,
        caller_id=parse_callerid(cid) if cid else None,
        timeout=timeout,
        channel_id=channel_id,
        other_id=other_id,
        variables=variables,
    )
    return ok(ch.json())


@route("POST /channels")
def originate(sim: Engine, args: Args) -> ApiResponse:
    return _originate(sim, args, args.get_str("channelId"))


@route("POST /channels/{channelId}")
def originate_with_id(sim: Engine, args: Args) -> ApiResponse:
    return _originate(sim, args, args.get_str("channelId"))


@route("POST /channels/create")
def create(sim: Engine, args: Args) -> ApiResponse:
    variables = _variables(args)
    if isinstance(variables, ApiResponse):
        return variables
    if args.get_str("originator") and args.get_str("formats"):
        return error(400, "Originator and formats can't both be specified")
    endpoint = args.get_str("endpoint") or ""
    if not endpoint:
        return error(400, "Endpoint must be specified")
    tech, _, resource = endpoint.partition("/")
    if not tech or not resource:
        return error(400, "Invalid endpoint specified")
    channel_id, other_id = args.get_str("channelId"), args.get_str("otherChannelId")
    if sim.dialplan.not_configured(endpoint):  # ast_request failed, before any channel is made
        return ALLOCATION_FAILED
    for uid in (channel_id, other_id):
        if uid and sim.id_in_use(uid):
            return error(409, "Channel with given unique ID already exists")
    ch = sim.dialling.create_channel(endpoint, args.get_str("app") or "", args.get_str("appArgs"),
                            channel_id, other_id, variables)
    return ok(ch.json())


@route("GET /channels/{channelId}")
def get_channel(sim: Engine, args: Args) -> ApiResponse:
    ch = sim.find_channel(args.get_str("channelId") or "")
    return ok(ch.json()) if ch else error(404, "Channel not found")


@route("DELETE /channels/{channelId}")
def hangup(sim: Engine, args: Args) -> ApiResponse:
    ch = sim.find_channel(args.get_str("channelId") or "")
    if ch is None:
        return error(404, "Channel not found")
    reason, code = args.get_str("reason"), args.get_str("reason_code")
    if reason and code:
        return error(400, "The reason and reason_code can't both be specified")
    cause = 16
    if code:
        try:
            cause = int(code.strip().split()[0])
        except ValueError:
            return error(400, "Invalid reason for hangup reason code provided")
    elif reason:
        if reason not in HANGUP_REASONS:
            return error(400, "Invalid reason for hangup reason provided")
        cause = HANGUP_REASONS[reason]
    sim.life.hangup_channel(ch, cause, soft=True)
    return no_content()


def _controlled(sim: Engine, args: Args, check_state: bool = False) -> Channel | ApiResponse:
    found = find_control(sim, args.get_str("channelId") or "")
    if isinstance(found, Channel) and check_state:
        bad = state_invalid(found)
        if bad is not None:
            return bad
    return found


@route("POST /channels/{channelId}/answer")
def answer(sim: Engine, args: Args) -> ApiResponse:
    ch = _controlled(sim, args, check_state=True)
    if isinstance(ch, ApiResponse):
        return ch
    sim.life.answer_channel(ch)
    return no_content()


@route("POST /channels/{channelId}/continue")
def continue_in_dialplan(sim: Engine, args: Args) -> ApiResponse:
    """resource_channels.c ast_ari_channels_continue_in_dialplan: no context → the channel's
    own (and its extension unless given); a context without extension → "s"; no priority →
    the next one when neither context nor extension was given, else 1. Labels: numeric only."""
    ch = _controlled(sim, args, check_state=True)
    if isinstance(ch, ApiResponse):
        return ch
    context_arg, exten_arg = args.get_str("context") or "", args.get_str("extension") or ""
    if context_arg:
        context, exten = context_arg, exten_arg or "s"
    else:
        context, exten = ch.dialplan.context, exten_arg or ch.dialplan.exten
    label = args.get_str("label") or ""
    if label:
        if not label.isdigit() or int(label) == 0:
            return error(404, "Requested label can not be found")
        priority = int(label)
    else:
        priority = args.get_int("priority", 0)
    if priority <= 0:
        priority = ch.dialplan.priority + 1 if not context_arg and not exten_arg else 1
    sim.continue_in_dialplan(ch, context, exten, priority)
    return no_content()


def _accept(sim: Engine, args: Args) -> ApiResponse:
    """Indications with no simulated effect: checked like Asterisk, then 204."""
    ch = _controlled(sim, args, check_state=True)
    return ch if isinstance(ch, ApiResponse) else no_content()


# Indications with no simulated effect, each answered like Asterisk by `_accept`.
for _key in (
    "POST /channels/{channelId}/ring",
    "DELETE /channels/{channelId}/ring",
    "POST /channels/{channelId}/progress",
    "POST /channels/{channelId}/silence",
    "DELETE /channels/{channelId}/silence",
    "POST /channels/{channelId}/moh",
    "DELETE /channels/{channelId}/moh",
):
    route(_key)(_accept)


@route("POST /channels/{channelId}/hold")
def hold(sim: Engine, args: Args) -> ApiResponse:
    """control.c app_control_hold only indicates hold to the channel (ast_indicate: the party
    hears music on hold); nothing is published — ChannelHold comes from a party holding the call
    (main/channel.c ast_queue_hold, Simulator.hold)."""
    return _accept(sim, args)


@route("DELETE /channels/{channelId}/hold")
def unhold(sim: Engine, args: Args) -> ApiResponse:
    return _accept(sim, args)


def _mute(sim: Engine, args: Args, on: bool) -> ApiResponse:
    ch = _controlled(sim, args)
    if isinstance(ch, ApiResponse):
        return ch
    direction = args.get_str("direction", "both")
    if not direction:
        return error(400, "Direction is required")
    if direction not in ("in", "out", "both"):
        return error(400, "Invalid direction specified")
    if direction in ("in", "both"):
        ch.muted_in = on
    return no_content()


@route("POST /channels/{channelId}/mute")
def mute(sim: Engine, args: Args) -> ApiResponse:
    return _mute(sim, args, True)


@route("DELETE /channels/{channelId}/mute")
def unmute(sim: Engine, args: Args) -> ApiResponse:
    return _mute(sim, args, False)


@route("POST /channels/{channelId}/dtmf")
def send_dtmf(sim: Engine, args: Args) -> ApiResponse:
    ch = _controlled(sim, args, check_state=True)
    if isinstance(ch, ApiResponse):
        return ch
    if not args.get_str("dtmf"):
        return error(400, "DTMF is required")
    return no_content()


def _play(sim: Engine, args: Args, playback_id: str | None) -> ApiResponse:
    ch = _controlled(sim, args, check_state=True)
    if isinstance(ch, ApiResponse):
        return ch
    if args.get_int("skipms", 3000) < 0:
        return error(400, "skipms cannot be negative")
    if args.get_int("offsetms", 0) < 0:
        return error(400, "offsetms cannot be negative")
    return queue_playback(sim, ch, args, playback_id, "Failed to queue media for playback")


def queue_playback(sim: Engine, target: Channel | Bridge, args: Args, playback_id: str | None,
                   failure: str) -> ApiResponse:
    """Shared by channel and bridge play: no media, or a playback id in use, is Asterisk's 500
    (with each resource's own message)."""
    media = [m for m in args.get_list("media") if m]
    if not media or (playback_id and playback_id in sim.playbacks):
        return error(500, failure)
    pb = sim.player.new_playback(target, media, args.get_str("lang"), playback_id)
    return created(f"/playbacks/{pb.id}", pb.json())


def play(sim: Engine, args: Args) -> ApiResponse:
    return _play(sim, args, args.get_str("playbackId"))


for _key in ("POST /channels/{channelId}/play", "POST /channels/{channelId}/play/{playbackId}"):
    route(_key)(play)


def record_options(sim: Engine, args: Args) -> dict[str, Any] | ApiResponse:
    """Checks shared by channel and bridge recordings (resource_*.c, stasis_app_control_record)."""
    terminate = (args.get_str("terminateOn") or "none").lower()
    if terminate not in ("none", "any", "#", "*"):
        return error(400, "terminateOn invalid")
    if_exists = (args.get_str("ifExists") or "fail").lower()
    if if_exists not in ("fail", "overwrite", "append"):
        return error(400, "ifExists invalid")
    return {"terminate_on": terminate, "if_exists": if_exists,
            "max_duration": args.get_int("maxDurationSeconds"),
            "max_silence": args.get_int("maxSilenceSeconds"), "beep": args.get_bool("beep")}


def check_record_name(
    sim: Engine, name: str, fmt: str, opts: dict[str, Any]
) -> ApiResponse | None:
    if fmt not in KNOWN_FORMATS:
        return error(422, "specified format is unknown on this system")
    if not name or opts["max_duration"] < 0 or opts["max_silence"] < 0:
        return error(500, "Error parsing request")
    if sim.recorder.name_escapes(name):
        return error(400, "Recording name invalid")
    exists = name in sim.recordings \
        or (opts["if_exists"] == "fail" and sim.recorder.name_exists(name))
    if exists:
        return error(409, f"Recording '{name}' already exists and can not be overwritten")
    return None


@route("POST /channels/{channelId}/record")
def record(sim: Engine, args: Args) -> ApiResponse:
    if args.get_int("maxDurationSeconds") < 0:
        return error(400, "max_duration_seconds cannot be negative")
    if args.get_int("maxSilenceSeconds") < 0:
        return error(400, "max_silence_seconds cannot be negative")
    ch = _controlled(sim, args)
    if isinstance(ch, ApiResponse):
        return ch
    return start_recording(sim, "channel", ch.id, args)


def start_recording(sim: Engine, kind: str, target_id: str, args: Args) -> ApiResponse:
    """What channel and bridge recordings share once their own checks passed: the options,
    the name, then the live recording (201 with its location)."""
    opts = record_options(sim, args)
    if isinstance(opts, ApiResponse):
        return opts
    name, fmt = args.get_str("name") or "", args.get_str("format") or ""
    bad = check_record_name(sim, name, fmt, opts)
    if bad is not None:
        return bad
    rec = sim.recorder.new_recording(kind, target_id, name, fmt, **opts)
    return created(live_recording_location(name), rec.json())


@route("POST /channels/{channelId}/dial")
def dial(sim: Engine, args: Args) -> ApiResponse:
    ch = _controlled(sim, args)
    if isinstance(ch, ApiResponse):
        return ch
    caller_id = args.get_str("caller")
    caller = sim.find_channel(caller_id) if caller_id else None
    if ch.state not in ("Down", "Rsrved"):
        return error(409, "Channel is not in the 'Down' state")
    if ch.ari_dialstring is None:
        return error(409, "Dialing a channel not created by ARI")
    if not ch.dialed:
        sim.dialling.ari_dial(ch, caller, args.get_int("timeout"))
    return no_content()


def _snoop(sim: Engine, args: Args, snoop_id: str | None) -> ApiResponse:
    spy = args.get_str("spy") or "none"
    whisper = args.get_str("whisper") or "none"
    if spy not in ("none", "both", "out", "in"):
        return error(400, "Invalid direction specified for spy")
    if whisper not in ("none", "both", "out", "in"):
        return error(400, "Invalid direction specified for whisper")
    if spy == "none" and whisper == "none":
        return error(400, "Direction must be specified for at least spy or whisper")
    app = args.get_str("app")
    if not app:
        return error(400, "Application name is required")
    target = sim.find_channel(args.get_str("channelId") or "")
    if target is None:
        return error(404, "Provided channel was not found")
    if snoop_id and sim.id_in_use(snoop_id):
        return error(500, "Snoop channel could not be created")
    snoop = sim.new_snoop(target, spy, whisper, app, args.get_str("appArgs"), snoop_id)
    return ok(snoop.json())


@route("POST /channels/{channelId}/snoop")
def snoop(sim: Engine, args: Args) -> ApiResponse:
    return _snoop(sim, args, args.get_str("snoopId"))


@route("POST /channels/{channelId}/snoop/{snoopId}")
def snoop_with_id(sim: Engine, args: Args) -> ApiResponse:
    return _snoop(sim, args, args.get_str("snoopId"))


@route("GET /channels/{channelId}/variable")
def get_variable(sim: Engine, args: Args) -> ApiResponse:
    name = args.get_str("variable")
    if not name:
        return error(400, "Variable name is required")
    ch = sim.find_channel(args.get_str("channelId") or "")
    if ch is None:
        return error(404, "Provided channel was not found")
    value = sim.pbx.read_variable(ch, name)
    if value is None:
        return error(404, "Provided variable was not found")
    return ok({"value": value})


@route("POST /channels/{channelId}/variable")
def set_variable(sim: Engine, args: Args) -> ApiResponse:
    name = args.get_str("variable")
    if not name:
        return error(400, "Variable name is required")
    ch = _controlled(sim, args)
    if isinstance(ch, ApiResponse):
        return ch
    sim.life.set_variable(ch, name, args.get_str("value") or "")
    return no_content()
