"""The call model's state: calls, their legs, bridge and recording segments.

Plain dataclasses that serialise to JSON, so a call's state is stored with its row and a daemon
that crashed can adopt the call where it left it. The reducer copies a call before changing it,
so a state handed to `step` is never modified.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

# Call phases, in the order a connected call passes through them.
CONSENT = "consent"  # caller in the bridge, hearing the announcement
DIALING = "dialing"  # target dialled, caller hears ringback
RECORDING_PENDING = "recording_pending"  # target answered; waiting for RecordingStarted
CALLEE_CONSENT = "callee_consent"  # the answered callee hears its announcement first
CONNECTING = "connecting"  # recording runs; answered leg being added to the bridge
BRIDGED = "bridged"  # two parties in the bridge, recorded
FOLLOWING = "following"  # hook mode: the dialplan keeps the call; we follow and record its legs
ENDING = "ending"  # a party left: tearing down, waiting for legs and recordings to close
ENDED = "ended"

# Leg states.
LEG_NEW = "new"  # created, not yet in Stasis
LEG_DIALING = "dialing"
LEG_RINGING = "ringing"
LEG_UP = "up"
LEG_GONE = "gone"

# Recording states (as in recorder.db.rows.RECORDING_STATUSES).
REC_REQUESTED = "requested"
REC_RECORDING = "recording"
REC_FINISHED = "finished"
REC_FILED = "filed"
REC_FAILED = "failed"
REC_MISSING = "missing"
REC_LIVE = (REC_REQUESTED, REC_RECORDING)
REC_DONE = (REC_FILED, REC_FAILED, REC_MISSING)


@dataclass
class Leg:
    channel_id: str
    role: str  # caller | callee
    channel_name: str
    started_at: datetime
    caller_name: str = ""
    caller_number: str = ""
    state: str = LEG_NEW
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    outcome: str | None = None
    dialstatus: str = ""  # the last Dial status Asterisk reported for this leg
    forwarded_to: str | None = None  # this leg answered 302 to that target
    forwarded_from: str | None = None  # this leg dials where that leg forwarded
    # Transfers: a Local half ("local") replaces a party in a bridge, or links to a new one.
    local_base: str | None = None  # "Local/300@transfer-target-00000047" for both halves
    replaces: str | None = None  # the leg this Local ;1 took the place of
    replaced_by: str | None = None  # the Local ;1 that took this leg's place (transferer)
    join_bridge: str | None = None  # a transfer target: the bridge it joins when it answers
    via: str | None = None  # a transfer target: the Local ;2 it is connected through
    originated: bool = False  # made with POST /channels: in the app only once answered
    in_stasis: bool = False
    waiting: bool = False  # answered and recorded, to join the bridge on its StasisStart
    party: str | None = None  # policy's label for a joining party ("target1"…)
    number: str | None = None  # what was dialled to reach this leg (consent: its jurisdiction)
    in_bridge: bool = False
    # [bridge_id, entered, left or None] per stay in a bridge: the coverage proof's input.
    spans: list[list[Any]] = field(default_factory=list)
    # [start, end or None] per hold (ChannelHold … ChannelUnhold): reported, never a gap.
    holds: list[list[Any]] = field(default_factory=list)
    talked_ms: int | None = None  # the coverage proof, filled when the call ends
    covered_ms: int | None = None
    held_ms: int | None = None
    # Hook mode: the recording of this leg's snoop channel now (None: not being recorded),
    # and the extension a blind transfer sent it to (whom its next Dial reaches).
    recording: str | None = None
    transferred_to: str | None = None
    # Hook mode: its snoop recording that ended while Asterisk is asked whether the leg lives
    # on (a gap then) or is being hung up (the usual end: its snoop ends first).
    checking: str | None = None


@dataclass
class Recording:
    name: str
    segment: int
    target: str
    format: str
    requested_at: datetime
    status: str = REC_REQUESTED
    started_at: datetime | None = None
    ended_at: datetime | None = None
    path: str | None = None
    duration_ms: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    file_pending: bool = False  # asked the adapter to file it; waiting for the result
    legs: list[str] = field(default_factory=list)  # channel ids in the bridge during it
    snoop_left: bool = False  # hook mode: its snoop channel left the app (StasisEnd)
    waiting: bool = False  # finished and safe in the spool; the archive was full (filed later)

    @property
    def done(self) -> bool:
        if self.file_pending:
            return False
        return self.status not in (*REC_LIVE, REC_FINISHED) or self.waiting


@dataclass
class Call:
    call_id: str
    asterisk_id: str
    direction: str
    target: str  # what the dialplan asked us to reach (extension or number)
    started_at: datetime
    caller_channel: str
    bridge_id: str
    caller_number: str | None = None
    caller_e164: str | None = None
    callee_number: str | None = None
    callee_e164: str | None = None
    extension: str | None = None
    department: str | None = None
    # The call's path as policy sees it (recorder.policy.call_facts): the DID and trunk it came
    # in on, a department the dialplan named, the ring-group member who answered, and every
    # party that joined by transfer or forward ({"target", "via", "attended"}), in order.
    did: str | None = None
    trunk: str | None = None
    given_department: str | None = None
    answered_by: str | None = None
    joins: list[dict[str, Any]] = field(default_factory=list)
    phase: str = CONSENT
    callee_channel: str | None = None
    playback_id: str | None = None
    playback_kind: str | None = None  # consent | ringback
    next_playback: int = 1
    next_segment: int = 1
    current_recording: str | None = None
    recording_retries: int = 0
    gaps: int = 0  # times a recording ended while the call was still up
    extra_bridges: list[str] = field(default_factory=list)  # e.g. a blind transfer's bridge
    linked_calls: list[str] = field(default_factory=list)  # joined by an attended transfer
    # [bridge_id, channel_id, entered, left or None]: a channel of another recorded call in a
    # bridge with this call's legs (hook mode: an attended transfer swaps the transferee into
    # the consultation call's bridge). Someone to talk with, for the coverage proof.
    peers: list[list[Any]] = field(default_factory=list)
    # [start, end or None, kind]: not recorded on purpose (kind "pause", "stop", "unrecorded").
    pauses: list[list[Any]] = field(default_factory=list)
    dtmf: dict[str, str] = field(default_factory=dict)  # channel -> last digits (controls)
    # Consent (recorder.policy): the decision, the announcements due, who refused, the prompt
    # playing now, and since when the call is deliberately not recorded (never a gap).
    record: bool = True
    decision: dict[str, Any] | None = None
    announcements: list[dict[str, Any]] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)  # playing, by playback id
    heard: dict[str, str] = field(default_factory=dict)  # party label -> strictest mode heard
    unrecorded_since: datetime | None = None
    bridge_created: bool = False
    bridge_destroyed: bool = False
    answered_at: datetime | None = None
    bridged_at: datetime | None = None  # when the call first had two parties bridged
    unbridged_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    status: str = "active"
    # Hook mode (calls the dialplan keeps, recorded through snoop channels).
    mode: str = "stasis"  # stasis | hook
    snoops: dict[str, str] = field(default_factory=dict)  # snoop channel id -> recording name
    hook_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # AGI awaiting reply
    tags: list[str] = field(default_factory=list)
    legs: dict[str, Leg] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)

    def copy(self) -> Call:
        # Shallow copies of each leg and recording, plus their small span lists (deepcopy made
        # this the model's hottest path).
        return dataclasses.replace(
            self,
            legs={
                k: dataclasses.replace(
                    v, spans=[list(x) for x in v.spans], holds=[list(x) for x in v.holds]
                )
                for k, v in self.legs.items()
            },
            recordings={k: dataclasses.replace(v, legs=list(v.legs))
                        for k, v in self.recordings.items()},
            opted_out=list(self.opted_out),
            joins=list(self.joins),
            prompts={k: dict(v) for k, v in self.prompts.items()},
            heard=dict(self.heard),
            pauses=[list(p) for p in self.pauses],
            peers=[list(p) for p in self.peers],
            dtmf=dict(self.dtmf),
            snoops=dict(self.snoops),
            hook_sessions={k: dict(v) for k, v in self.hook_sessions.items()},
            tags=list(self.tags),
        )

    def open_pause(self, kind: str) -> list[Any] | None:
        """The interval of that kind not yet closed (pauses stored before kinds were: "pause")."""
        for p in self.pauses:
            if p[1] is None and (p[2] if len(p) > 2 else "pause") == kind:
                return p
        return None

    def snoop_of(self, name: str) -> str | None:
        """Hook mode: the snoop channel whose recording is `name`."""
        return next((sid for sid, rec in self.snoops.items() if rec == name), None)

    def recording_due(self) -> bool:
        """Policy now records a call it did not (recorder.model.decisions): the announcements
        due come first, then a recording starts; until then it stays not recorded on purpose."""
        return self.record and self.unrecorded_since is not None

    def recorded_from(self, at: datetime) -> None:
        """A recording runs from `at`: the time policy left unrecorded ends there."""
        if self.unrecorded_since is not None:
            self.pauses.append([self.unrecorded_since, at, "unrecorded"])
            self.unrecorded_since = None

    def all_bridges(self) -> list[str]:
        return [self.bridge_id, *self.extra_bridges]

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.state != LEG_GONE]

    def bridged_parties(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.in_bridge and leg.state != LEG_GONE]

    def live_recordings(self) -> list[Recording]:
        return [r for r in self.recordings.values() if r.status in REC_LIVE]

    def to_json(self) -> dict[str, Any]:
        data = _flat(self)
        data["legs"] = {k: _flat(v) for k, v in self.legs.items()}
        data["recordings"] = {k: _flat(v) for k, v in self.recordings.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Call:
        raw = dict(data)
        legs = {k: _build(Leg, v) for k, v in raw.pop("legs", {}).items()}
        recs = {k: _build(Recording, v) for k, v in raw.pop("recordings", {}).items()}
        call = _build(cls, raw)
        call.legs = legs
        call.recordings = recs
        return call


_NAMES: dict[type, tuple[str, ...]] = {}


def _flat(obj: Any) -> dict[str, Any]:
    # Every change of a call writes its snapshot: this is the model's hottest path, so the
    # field names are looked up once per class and plain values skip the encoder.
    names = _NAMES.get(type(obj))
    if names is None:  # legs and recordings are encoded by the caller, as maps of their own
        names = _NAMES[type(obj)] = tuple(  # (a recording's own `legs` are kept)
            f.name for f in fields(obj)
            if not (type(obj) is Call and f.name in ("legs", "recordings")))
    values = obj.__dict__
    return {n: v if v is None or type(v) in _PLAIN else _enc(v)
            for n in names for v in (values[n],)}


_PLAIN = frozenset({str, int, bool, float})


def _enc(value: Any) -> Any:
    if type(value) in _PLAIN or value is None:
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, list):
        return [_enc(v) for v in value]
    if isinstance(value, dict):
        return {k: _enc(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _build(cls: type[T], data: dict[str, Any]) -> T:
    # Unknown keys are dropped so a snapshot written by an older/newer daemon still loads.
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: _decode(v) for k, v in data.items() if k in names})


@dataclass
class ModelState:
    """Every call the daemon handles, with indexes from ARI object ids to their call."""

    calls: dict[str, Call] = field(default_factory=dict)
    by_channel: dict[str, str] = field(default_factory=dict)
    by_bridge: dict[str, str] = field(default_factory=dict)
    by_recording: dict[str, str] = field(default_factory=dict)
    by_playback: dict[str, str] = field(default_factory=dict)
    # A transfer's Local ;2 that entered the app before its ;1 (either order happens):
    # base name -> (channel, exten), claimed when the ;1 arrives.
    pending_locals: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def copy(self) -> ModelState:
        """A copy of this state, to change its own maps without touching the original."""
        return ModelState(
            calls=dict(self.calls),
            by_channel=dict(self.by_channel),
            by_bridge=dict(self.by_bridge),
            by_recording=dict(self.by_recording),
            by_playback=dict(self.by_playback),
            pending_locals=dict(self.pending_locals),
        )

    def with_call(self, call: Call) -> ModelState:
        """A new state holding `call` (replacing its old version) and its indexes."""
        new = ModelState(
            calls=dict(self.calls),
            by_channel=dict(self.by_channel),
            by_bridge=dict(self.by_bridge),
            by_recording=dict(self.by_recording),
            by_playback=dict(self.by_playback),
            pending_locals=dict(self.pending_locals),
        )
        if call.status == "ended":
            new.calls.pop(call.call_id, None)
            for index in (new.by_channel, new.by_bridge, new.by_recording, new.by_playback):
                for key in [k for k, v in index.items() if v == call.call_id]:
                    del index[key]
            return new
        new.calls[call.call_id] = call
        for leg_id in call.legs:
            new.by_channel[leg_id] = call.call_id
        if call.bridge_id:  # hook-mode calls have no bridge of ours
            new.by_bridge[call.bridge_id] = call.call_id
        for bridge_id in call.extra_bridges:
            new.by_bridge[bridge_id] = call.call_id
        for name in call.recordings:
            new.by_recording[name] = call.call_id
        for snoop_id in call.snoops:
            new.by_channel[snoop_id] = call.call_id
        if call.playback_id:
            new.by_playback[call.playback_id] = call.call_id
        for playback_id in call.prompts:
            new.by_playback[playback_id] = call.call_id
        return new
