"""Objects the simulator keeps — channels, bridges, live recordings, playbacks — and their JSON.

The JSON shapes follow the traces in asterisk-test/traces (field order included) and the models
of the api-docs: Channel (channels.json), Bridge (bridges.json), LiveRecording (recordings.json),
Playback (playbacks.json).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import WavWriter
from .clock import Timer, format_timestamp

# The traced Asterisk (GET /asterisk/info, FastAGI agi_version).
ASTERISK_VERSION = "22.10.1"

# main/channel.c causes[] (cause number → text); 0 is "Unknown" (trace sip_forward_302_originate).
CAUSES: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    5: "Misdialed trunk prefix",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    8: "Pre-empted",
    14: "Number ported elsewhere",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    103: "Mandatory IE length error",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}
CAUSE_NORMAL = 16
CAUSE_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_SUBSCRIBER_ABSENT = 20
CAUSE_REJECTED = 21
CAUSE_CONGESTION = 34
SOFTHANGUP_EXPLICIT = 32  # AST_SOFTHANGUP_EXPLICIT, the "cause" of a soft ChannelHangupRequest

# resource_channels.c convert_reason_to_hangup_code
HANGUP_REASONS: dict[str, int] = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}


def cause_text(cause: int) -> str:
    return CAUSES.get(cause, "Unknown")


@dataclass
class CallerId:
    name: str = ""
    number: str = ""

    def json(self) -> dict[str, str]:
        return {"name": self.name, "number": self.number}


@dataclass
class DialplanLocation:
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "exten": self.exten,
            "priority": self.priority,
            "app_name": self.app_name,
            "app_data": self.app_data,
        }


@dataclass
class Channel:
    """A channel and the simulated party behind it.

    `tone_hz`/`talking` say what the party sends into a bridge; `sends_media` whether frames flow
    when it is alone in a bridge (a SIP phone's RTP does, a Local channel's does not: README of the
    traces, record_started_alone_slow_answer vs sip_caller_slow_answer).
    """

    id: str
    name: str
    tech: str
    resource: str
    creationtime: float
    state: str = "Down"
    caller: CallerId = field(default_factory=CallerId)
    connected: CallerId = field(default_factory=CallerId)
    dialplan: DialplanLocation = field(default_factory=DialplanLocation)
    protocol_id: str = ""
    language: str = "en"
    accountcode: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    # media
    tone_hz: int | None = None
    talking: bool = True
    sends_media: bool = False
    # Stasis: the app running it, and apps subscribed explicitly (create/originate with app)
    stasis_app: str | None = None
    stasis_args: list[str] = field(default_factory=list)
    explicit_apps: set[str] = field(default_factory=set)
    bridge_id: str | None = None
    peer_id: str | None = None  # the other half of a Local pair
    half: int = 0  # 1 or 2 for Local halves
    hangup_cause: int = CAUSE_NORMAL
    tech_cause: int | None = None
    hungup: bool = False
    destroyed: bool = False
    ari_dialstring: str | None = None  # set by /channels/create: only these can be /dial'ed
    dialing: bool = False
    dialed: bool = False
    timers: list[Timer] = field(default_factory=list)
    playback_queue: list[str] = field(default_factory=list)
    playing: str | None = None
    muted_in: bool = False
    on_hold: bool = False
    snoop_of: str | None = None
    spy: str = "none"
    # dialplan interpreter position for channels outside Stasis (see dialplan.py)
    dp_steps: list[tuple[str, str]] = field(default_factory=list)
    dp_index: int = 0
    behaviour_key: str | None = None
    originate_app: str | None = None
    originate_args: str = ""
    originating: bool = False  # dialled by originate (main/dial.c), not answered yet
    origin_target: DialplanLocation | None = None
    originate_deadline: float | None = None  # virtual time the originate's dial times out
    originate_device: str = ""  # main/dial.c channel->device: Dial `dialstring` of its statuses
    # RDNIS after a 302 (res_pjsip_diversion.c diversion_incoming_response): shown in the JSON
    caller_rdnis: str | None = None
    # A StasisStart with replace_channel dropped the app's Stasis-entry subscription to this
    # channel (res_stasis.c send_start_msg_snapshots → app_unsubscribe_channel_id)
    stasis_unsubscribed: bool = False
    # ---- channels the dialplan keeps (hook mode: appdial.py, agi.py)
    dnid: str = ""  # dialled number of an inbound call (agi_dnid)
    # "_VAR"/"__VAR" set by the dialplan: name → 1 (inherited once) or 2 (always), as
    # ast_channel_inherit_variables copies them into the channels Dial() creates
    inherit: dict[str, int] = field(default_factory=dict)
    dial_run: DialRun | None = None  # the Dial() this channel runs (caller)
    # What the caller of a Dial() hears while it waits, until it is bridged (U() routine
    # included): "ringing" (the r option, or the called line's ringing passed on), "moh" (m),
    # or None: silence.
    waiting_hears: str | None = None
    dialed_by: DialRun | None = None  # the Dial() that dialled this channel (callee)
    # what the channel does when it leaves a basic bridge: "dial" (its Dial() returns to the
    # dialplan), "hangup" (an imparted callee: ast_bridge_run_after_goto finds no goto)
    after_bridge: str | None = None
    pending_goto: tuple[str, str] | None = None  # ast_async_goto target (context, exten)
    dp_return: Callable[[], None] | None = None  # the Gosub (or Dial U()) to return from
    dp_saved: tuple[str, str, int, str, str] | None = None  # location before a Dial U()
    dp_unwinding: bool = False  # a U() routine ended abnormally: Gosub levels return at once
    agi: AgiSession | None = None  # the FastAGI session running on this channel
    destroy_pending: bool = False  # hung up while an application still owns it
    # ast_hangup began (main/channel.c ast_channel_unlink): ARI finds it no more (404), though
    # its ChannelDestroyed waits until the snoops spying on it let it go
    unlinked: bool = False
    suspended: bool = False  # bridge_channel suspended (running a DTMF feature's app)
    features: list[str] = field(default_factory=list)  # DYNAMIC_FEATURES armed at bridge join
    feature_digits: str = ""  # DTMF collected towards a feature code
    feature_timer: Timer | None = None

    @property
    def in_stasis(self) -> bool:
        return self.stasis_app is not None

    def subscribers(self) -> set[str]:
        """Apps holding a subscription: explicit ones (create/originate with app, a Dial
        `forwarded`) and the Stasis app — refcounted in res/stasis/app.c, modelled as a set
        plus `stasis_unsubscribed`."""
        apps = set(self.explicit_apps)
        if self.stasis_app and not self.stasis_unsubscribed:
            apps.add(self.stasis_app)
        return apps

    def cancel_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": self.caller.json(),
            "connected": self.connected.json(),
            "accountcode": self.accountcode,
            "dialplan": self.dialplan.json(),
            "creationtime": format_timestamp(self.creationtime),
            "language": self.language,
        } | ({"caller_rdnis": self.caller_rdnis} if self.caller_rdnis is not None else {})


@dataclass
class Bridge:
    id: str
    name: str
    bridge_type: str
    creationtime: float
    video_mode: str = "talker"
    channels: list[str] = field(default_factory=list)  # parties, in join order
    recorder_ids: list[str] = field(default_factory=list)  # Recorder channels of live recordings
    subscribed_apps: set[str] = field(default_factory=set)
    technology: str = "simple_bridge"
    destroyed: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    # "stasis" (POST /bridges) or "basic" (ast_bridge_basic_new, as Dial() bridges: no creator,
    # no name, video mode none — main/bridge_basic.c, main/stasis_bridges.c)
    bridge_class: str = "stasis"
    dissolved: bool = False

    @property
    def creator(self) -> str:
        return "Stasis" if self.bridge_class == "stasis" else ""

    def json(self) -> dict[str, Any]:
        # A Recorder left alone shows in `channels` (traces caller_abandons, sip_basic).
        shown = list(self.channels) or list(self.recorder_ids[:1])
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": self.bridge_class,
            "creator": self.creator,
            "name": self.name,
            "channels": shown,
            "creationtime": format_timestamp(self.creationtime),
            "video_mode": self.video_mode,
        }

    def settle_technology(self) -> None:
        """simple_bridge for two channels, softmix for more (recorders count), as traced."""
        if self.bridge_type == "holding":
            self.technology = "holding_bridge"
        else:
            n = len(self.channels) + len(self.recorder_ids)
            self.technology = "softmix" if n > 2 else "simple_bridge"


@dataclass
class LiveRecording:
    """A recording in progress (res/res_stasis_recording.c); `kind` is "bridge" or "channel"."""

    name: str
    format: str
    target_uri: str
    kind: str
    target_id: str
    path: Path
    if_exists: str = "fail"
    max_duration: int = 0
    max_silence: int = 0
    beep: bool = False
    terminate_on: str = "none"
    state: str = "queued"
    cause: str | None = None
    duration: int | None = None
    talking_duration: int | None = None
    recorder_id: str | None = None
    recorder_name: str = ""  # "Recorder/ARI-00000032;2", as BRIDGEPEER / BLINDTRANSFER show it
    writer: WavWriter | None = None
    muted: bool = False
    started_at: float = 0.0
    rendered_until: float = 0.0
    active_seconds: float = 0.0  # unpaused time, for maxDurationSeconds
    silence_run: float = 0.0  # trailing silence written, for maxSilenceSeconds
    silence_total: float = 0.0
    mix: tuple[int, ...] = ()  # tones currently being written
    feeding: bool = False  # frames reach the recorder (else nothing is written)
    starve_timer: Timer | None = None
    end_timer: Timer | None = None  # maxDurationSeconds
    silence_timer: Timer | None = None  # maxSilenceSeconds

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": self.target_uri,
        }
        if self.duration is not None:
            out["duration"] = self.duration
        if self.talking_duration is not None and self.duration is not None:
            out["talking_duration"] = self.talking_duration
            out["silence_duration"] = self.duration - self.talking_duration
        if self.cause:
            out["cause"] = self.cause
        return out


@dataclass
class MixMonitor:
    """A MixMonitor() running on a channel (mixmonitor.py): its file, and what it writes now."""

    channel_id: str
    path: Path
    writer: WavWriter
    rendered_until: float
    mix: tuple[int, ...] = ()
    feeding: bool = True


@dataclass
class Playback:
    id: str
    media: list[str]
    target_uri: str
    language: str
    target_kind: str  # channel | bridge
    target_id: str
    index: int = 0
    state: str = "queued"
    timer: Timer | None = None
    remaining: float | None = None  # seconds left while paused

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "media_uri": self.media[self.index]}
        if self.index < len(self.media) - 1:
            out["next_media_uri"] = self.media[self.index + 1]
        out.update(target_uri=self.target_uri, language=self.language, state=self.state)
        return out


@dataclass
class DialRun:
    """A Dial() the dialplan runs on `caller_id` (apps/app_dial.c dial_exec_full)."""

    caller_id: str
    data: str
    options: dict[str, str]
    dialstrings: dict[str, str] = field(default_factory=dict)  # callee id → number dialled
    going: list[str] = field(default_factory=list)  # callees still ringing (DIAL_STILLGOING)
    reported: dict[str, str] = field(default_factory=dict)  # callee id → end status published
    requested: int = 0  # destinations Dial() tried (numlines)
    status: str = "NOANSWER"  # pa.status
    peer_id: str | None = None
    busy: int = 0
    congestion: int = 0
    nochan: int = 0
    timer: Timer | None = None
    done: bool = False


@dataclass
class AgiSession:
    """One FastAGI session (res/res_agi.c launch_netscript + run_agi), for tests to await.

    state: connecting | waiting (for the server's next command) | playing (a command running
    on the virtual clock) | done. `status` is the AGISTATUS it set; `kind` says who runs it:
    "dialplan" (AGI() in a channel's dialplan), "gosub" (a Dial U() routine on the called
    channel), "feature" (an applicationmap DTMF feature in a basic bridge).
    """

    id: int
    channel_id: str
    channel_name: str
    url: str
    script: str
    args: list[str]
    kind: str
    state: str = "connecting"
    visited: list[str] = field(default_factory=lambda: ["connecting"])
    env: list[str] = field(default_factory=list)  # the lines sent before the blank line
    commands: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    status: str | None = None
    dead: bool = False  # the channel hung up: only dead-channel commands run
    started_at: float = 0.0  # virtual seconds
    ended_at: float | None = None
    error: str | None = None  # why the connection failed
    # run-time plumbing (agi.py), not part of the record
    result: str = "SUCCESS"  # run_agi's returnstatus so far
    working: bool = False  # a command is being handled (settle waits)
    hangup_sent: bool = False
    idle_since: float = 0.0  # event-loop time of the last reply
    wait: AgiWait | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    on_done: Callable[[AgiSession], None] | None = field(default=None, repr=False)

    def set_state(self, state: str) -> None:
        self.state = state
        if state not in self.visited:
            self.visited.append(state)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "channel_id": self.channel_id, "channel_name": self.channel_name,
                "url": self.url, "script": self.script, "args": list(self.args),
                "kind": self.kind, "state": self.state, "visited": list(self.visited),
                "env": list(self.env), "commands": list(self.commands),
                "replies": list(self.replies), "status": self.status, "dead": self.dead,
                "started_at": self.started_at, "ended_at": self.ended_at, "error": self.error}


@dataclass
class AgiWait:
    """An AGI command running on the virtual clock (STREAM FILE, EXEC Playback/Wait): resolved
    with ("done" | "dtmf" | "hangup", result code)."""

    future: asyncio.Future[tuple[str, int]]
    started: float
    escape: str = ""
    timer: Timer | None = None
    elapsed: float = 0.0
