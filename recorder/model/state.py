"""The call model's state: calls, their legs, bridge and recording segments.

Typed dataclasses, enums and small immutable records, stored as JSON with the call's row
(recorder.model.snapshot) so a daemon that crashed can adopt the call where it left it. The
reducer copies a call before changing it, so a state handed to `step` is never modified.

What only one mode uses has its own record, on the call and on each leg: `stasis` (the app
answers, bridges, dials and transfers) and `hook` (the dialplan keeps the call; snoop channels
record it). A call's record of the other mode stays at its defaults. A leg's are frozen (a step
replaces one with dataclasses.replace): the per-step copy shares them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import repeat
from operator import attrgetter
from typing import TypeVar

from immutables import Map

from recorder.ari.events import ChannelInfo
from recorder.model.fields import Fields, fresh
from recorder.model.records import CallDecision, HookSession, OnHold, Pause, Peer, Prompt, Stay
from recorder.policy.announce import Announcement
from recorder.policy.model import Mode as ConsentMode
from recorder.policy.rules import Join

T = TypeVar("T")


class CallMode(StrEnum):
    """How a call is recorded: in the Stasis app, or kept by the dialplan (hook mode)."""

    STASIS = "stasis"
    HOOK = "hook"

class Phase(StrEnum):
    """A call's phase, in the order a connected call passes through them."""

    CONSENT = "consent"  # caller in the bridge, hearing the announcement
    DIALING = "dialing"  # target dialled, caller hears ringback
    RECORDING_PENDING = "recording_pending"  # target answered; waiting for RecordingStarted
    CALLEE_CONSENT = "callee_consent"  # the answered callee hears its announcement first
    CONNECTING = "connecting"  # recording runs; answered leg being added to the bridge
    BRIDGED = "bridged"  # two parties in the bridge, recorded
    FOLLOWING = "following"  # hook mode: the dialplan keeps the call; we follow and record its legs
    ENDING = "ending"  # a party left: tearing down, waiting for legs and recordings to close
    ENDED = "ended"


CONSENT = Phase.CONSENT
DIALING = Phase.DIALING
RECORDING_PENDING = Phase.RECORDING_PENDING
CALLEE_CONSENT = Phase.CALLEE_CONSENT
CONNECTING = Phase.CONNECTING
BRIDGED = Phase.BRIDGED
FOLLOWING = Phase.FOLLOWING
ENDING = Phase.ENDING
ENDED = Phase.ENDED


class LegState(StrEnum):
    NEW = "new"  # created, not yet in Stasis
    DIALING = "dialing"
    RINGING = "ringing"
    UP = "up"
    GONE = "gone"


LEG_NEW = LegState.NEW
LEG_DIALING = LegState.DIALING
LEG_RINGING = LegState.RINGING
LEG_UP = LegState.UP
LEG_GONE = LegState.GONE

# The cause text of the ChannelDestroyed reconciliation makes for a leg Asterisk no longer has:
# it ended at a moment nobody saw (recorder.model.reconcile).
GONE_UNSEEN = "gone while disconnected"


class RecStatus(StrEnum):
    """A recording's status (as in recorder.db.rows.RECORDING_STATUSES)."""

    REQUESTED = "requested"
    RECORDING = "recording"
    FINISHED = "finished"
    FILED = "filed"
    FAILED = "failed"
    MISSING = "missing"


REC_REQUESTED = RecStatus.REQUESTED
REC_RECORDING = RecStatus.RECORDING
REC_FINISHED = RecStatus.FINISHED
REC_FILED = RecStatus.FILED
REC_FAILED = RecStatus.FAILED
REC_MISSING = RecStatus.MISSING
REC_LIVE = (REC_REQUESTED, REC_RECORDING)
REC_DONE = (REC_FILED, REC_FAILED, REC_MISSING)


@dataclass(frozen=True)
class StasisLeg:
    """What only Stasis mode keeps of a leg: the app dials it, bridges it and transfers it."""

    originated: bool = False  # made with POST /channels: in the app only once answered
    in_stasis: bool = False
    waiting: bool = False  # answered and recorded, to join the bridge on its StasisStart
    forwarded_from: str | None = None  # this leg dials where that leg forwarded
    # Transfers: a Local half replaces a party in a bridge, or links to a new one.
    replaces: str | None = None  # the leg this Local ;1 took the place of
    replaced_by: str | None = None  # the Local ;1 that took this leg's place (transferer)
    join_bridge: str | None = None  # a transfer target: the bridge it joins when it answers
    via: str | None = None  # a transfer target: the Local ;2 it is connected through
    # The Q.850 cause of the app's own hang-up of the leg (ARI sets it on the channel before
    # the soft hang-up): its cause when no event carries one (recorder.model.ending.hang_up)
    hangup_asked: int | None = None


@dataclass(frozen=True)
class HookLeg:
    """What only hook mode keeps of a leg (the dialplan keeps it; a snoop channel records it)."""

    recording: str | None = None  # its snoop's recording now (None: not being recorded)
    transferred_to: str | None = None  # the extension a blind transfer sent it to
    # its snoop recording that ended while Asterisk is asked whether the leg lives on (a gap
    # then) or is being hung up (the usual end: its snoop ends first)
    checking: str | None = None
    # Asterisk said the leg is being hung up (ChannelHangupRequest: published by a hang-up
    # queued or asked for, never by a redirect's soft hang-up)
    hanging_up: bool = False


@dataclass(eq=False)
class Leg(Fields):
    channel_id: str
    role: str  # caller | callee
    channel_name: str
    started_at: datetime
    caller_name: str = ""
    caller_number: str = ""
    state: LegState = LEG_NEW
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    outcome: str | None = None
    dialstatus: str = ""  # the last Dial status Asterisk reported for this leg
    forwarded_to: str | None = None  # this leg answered 302 to that target
    local_base: str | None = None  # a Local half: "Local/300@transfer-target-00000047"
    party: str | None = None  # policy's label for a joining party ("target1"…)
    number: str | None = None  # what was dialled to reach this leg (consent: its jurisdiction)
    in_bridge: bool = False
    spans: list[Stay] = field(default_factory=list)
    holds: list[OnHold] = field(default_factory=list)
    talked_ms: int | None = None  # the coverage proof, filled when the call ends
    covered_ms: int | None = None
    held_ms: int | None = None
    # found gone by reconciliation: `ended_at` is when, until the recordings say when it most
    # likely ended (recorder.model.coverage.unseen_end)
    end_unseen: bool = False
    stasis: StasisLeg = field(default_factory=StasisLeg)
    hook: HookLeg = field(default_factory=HookLeg)


@dataclass(eq=False)
class Recording(Fields):
    name: str
    segment: int
    target: str
    format: str
    requested_at: datetime
    status: RecStatus = REC_REQUESTED
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


@dataclass(eq=False)
class StasisCall(Fields):
    """What only Stasis mode keeps of a call: its consent or ringback playing, the bridge
    recording now and its retries, its bridges."""

    playback_id: str | None = None  # the consent or ringback the app plays to the caller
    playback_kind: str | None = None  # consent | ringback
    current_recording: str | None = None
    recording_retries: int = 0
    bridge_created: bool = False
    bridge_destroyed: bool = False
    extra_bridges: list[str] = field(default_factory=list)  # e.g. a blind transfer's bridge
    # Why the call's end hung up its other parties (busy, congestion...): asked again with it
    # when a crash came between that step and Asterisk hearing it.
    hangup_reason: str = "normal"


@dataclass(eq=False)
class HookCall(Fields):
    """What only hook mode keeps of a call: its snoop channels, the AGI sessions waiting for an
    answer, and the other recorded calls' channels its legs shared a bridge with."""

    snoops: dict[str, str] = field(default_factory=dict)  # snoop channel id -> recording name
    sessions: dict[str, HookSession] = field(default_factory=dict)  # AGI awaiting reply
    peers: list[Peer] = field(default_factory=list)


@dataclass(eq=False)
class Call(Fields):
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
    joins: list[Join] = field(default_factory=list)
    phase: Phase = CONSENT
    callee_channel: str | None = None
    next_playback: int = 1
    next_segment: int = 1
    gaps: int = 0  # times a recording ended while the call was still up
    # When recordings that could not run are tried again (recorder.model.segments.retry_later;
    # the daemon's periodic task feeds RecordingRetryDue once it has passed)
    retry_at: datetime | None = None
    linked_calls: list[str] = field(default_factory=list)  # joined by an attended transfer
    pauses: list[Pause] = field(default_factory=list)
    dtmf: dict[str, str] = field(default_factory=dict)  # channel -> last digits (controls)
    # Consent (recorder.policy): the decision, the announcements due, who refused, the prompt
    # playing now, and since when the call is deliberately not recorded (never a gap).
    record: bool = True
    decision: CallDecision | None = None
    announcements: list[Announcement] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)
    prompts: dict[str, Prompt] = field(default_factory=dict)  # playing, by playback id
    # party label -> the strictest announcement it heard
    heard: dict[str, ConsentMode] = field(default_factory=dict)
    unrecorded_since: datetime | None = None
    answered_at: datetime | None = None
    bridged_at: datetime | None = None  # when the call first had two parties bridged
    unbridged_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    status: str = "active"
    mode: CallMode = CallMode.STASIS
    tags: list[str] = field(default_factory=list)
    legs: dict[str, Leg] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    stasis: StasisCall = field(default_factory=StasisCall)
    hook: HookCall = field(default_factory=HookCall)

    def copy(self) -> Call:
        """A copy a step may change without touching this call: new Call, Leg and Recording
        objects and mode records, each list and map a new one holding the same values. The
        records in them (Stay, Pause, Prompt...) are immutable, so they are shared, never
        copied."""
        new = fresh(self)  # its own maps of legs and recordings: their values replaced here
        new.stasis, new.hook = fresh(self.stasis), fresh(self.hook)
        legs, recordings = new.legs, new.recordings
        for k, leg in legs.items():
            legs[k] = fresh(leg)  # its mode records are frozen: shared
        for k, rec in recordings.items():
            recordings[k] = fresh(rec)
        return new

    def open_pause(self, kind: str) -> Pause | None:
        """The interval of that kind not yet closed."""
        return next((p for p in self.pauses if p.end is None and p.kind == kind), None)

    def close_pause(self, kind: str, at: datetime) -> None:
        """End the open interval of that kind at `at` (if there is one)."""
        for i, p in enumerate(self.pauses):
            if p.end is None and p.kind == kind:
                self.pauses[i] = p._replace(end=at)
                return

    def snoop_of(self, name: str) -> str | None:
        """Hook mode: the snoop channel whose recording is `name`."""
        return next((sid for sid, rec in self.hook.snoops.items() if rec == name), None)

    def recording_due(self) -> bool:
        """Policy now records a call it did not (recorder.model.decisions): the announcements
        due come first, then a recording starts; until then it stays not recorded on purpose."""
        return self.record and self.unrecorded_since is not None

    def recorded_from(self, at: datetime) -> None:
        """A recording runs from `at`: the time policy left unrecorded ends there."""
        if self.unrecorded_since is not None:
            self.pauses.append(Pause(self.unrecorded_since, at, "unrecorded"))
            self.unrecorded_since = None

    def all_bridges(self) -> list[str]:
        return [self.bridge_id, *self.stasis.extra_bridges]

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.state != LEG_GONE]

    def bridged_parties(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.in_bridge and leg.state != LEG_GONE]

    def live_recordings(self) -> list[Recording]:
        return [r for r in self.recordings.values() if r.status in REC_LIVE]


@dataclass
class ModelState:
    """Every call the daemon handles, with indexes from ARI object ids to their call.

    The maps are persistent (immutables.Map, a hash array mapped trie): a step's new state is
    its old one with one call set, in O(log n), and shares everything else with it, so the
    state a step was handed stays as it was without a copy of every call's entries per step
    (issue 15: the copy grew with the active calls)."""

    calls: Map[str, Call] = field(default_factory=Map)
    by_channel: Map[str, str] = field(default_factory=Map)
    by_bridge: Map[str, str] = field(default_factory=Map)
    by_recording: Map[str, str] = field(default_factory=Map)
    by_playback: Map[str, str] = field(default_factory=Map)
    by_local: Map[str, str] = field(default_factory=Map)  # a Local pair's base name (transfers)
    # A transfer's Local ;2 that entered the app before its ;1 (either order happens):
    # base name -> (channel, exten), claimed when the ;1 arrives (a new dict then, never
    # changed in place: states share it).
    pending_locals: dict[str, tuple[ChannelInfo, str]] = field(default_factory=dict)
    # call id -> every id the indexes were given for it: what its end takes out of them, with
    # no pass over every call's entries (a call drops ids the indexes keep, e.g. playbacks)
    owned: Map[str, tuple[str, ...]] = field(default_factory=Map)
    # Calls another call took an index entry from (the two calls an attended transfer links
    # share a Local pair's base; each step of either points it at its own): their next
    # `with_call` points every id at them again, as it does for any call not given `before`.
    robbed: frozenset[str] = frozenset()

    def with_call(self, call: Call, before: Call | None = None) -> ModelState:
        """A new state holding `call` (replacing its old version) and its indexes. An index
        the call adds nothing to is the same map (most steps add no id). `before`: the call as
        this state holds it; when `call` has no id `before` lacked and no other call took one
        since (most steps), the indexes are kept without a look at them."""
        call_id = call.call_id
        if call.status == "ended":
            keys = self.owned.get(call_id, ())
            return ModelState(_deleted(self.calls, call_id),
                              _without(self.by_channel, keys, call_id),
                              _without(self.by_bridge, keys, call_id),
                              _without(self.by_recording, keys, call_id),
                              _without(self.by_playback, keys, call_id),
                              _without(self.by_local, keys, call_id), self.pending_locals,
                              _deleted(self.owned, call_id), self.robbed - {call_id})
        if before is not None and call_id not in self.robbed and _no_new_ids(call, before):
            return ModelState(self.calls.set(call_id, call), self.by_channel, self.by_bridge,
                              self.by_recording, self.by_playback, self.by_local,
                              self.pending_locals, self.owned, self.robbed)
        stasis = call.stasis
        extra = stasis.extra_bridges
        bridges = (call.bridge_id, *extra) if call.bridge_id else extra  # hook mode: none
        playbacks = (stasis.playback_id, *call.prompts) if stasis.playback_id else call.prompts
        added: list[str] = []
        robbed: set[str] = set()
        state = ModelState(
            self.calls.set(call_id, call),
            _with(self.by_channel, (*call.legs, *call.hook.snoops), call_id, added, robbed),
            _with(self.by_bridge, bridges, call_id, added, robbed),
            _with(self.by_recording, call.recordings, call_id, added, robbed),
            _with(self.by_playback, playbacks, call_id, added, robbed),
            _with(self.by_local, {g.local_base for g in call.legs.values() if g.local_base},
                  call_id, added, robbed),
            self.pending_locals,
            self.owned,
            self.robbed,
        )
        if added:
            state.owned = self.owned.set(call_id, (*self.owned.get(call_id, ()), *added))
        if robbed or call_id in self.robbed:
            state.robbed = (self.robbed | robbed) - {call_id}
        return state


_LOCAL_BASE = attrgetter("local_base")


def _no_new_ids(call: Call, before: Call) -> bool:
    """Whether every id `call` gives the indexes is one `before` gave them (cheap checks,
    mostly in C: False may also mean only that they could not tell)."""
    stasis, was = call.stasis, before.stasis
    return (call.legs.keys() <= before.legs.keys()
            and call.recordings.keys() <= before.recordings.keys()
            and call.prompts.keys() <= before.prompts.keys()
            and call.hook.snoops.keys() <= before.hook.snoops.keys()
            and call.bridge_id == before.bridge_id
            and stasis.extra_bridges == was.extra_bridges
            and stasis.playback_id in (None, was.playback_id)
            # a leg's Local base is set when it is made; a leg made again under its id could
            # bring another
            and list(map(_LOCAL_BASE, call.legs.values()))
            == list(map(_LOCAL_BASE, map(before.legs.__getitem__, call.legs))))


def _deleted(m: Map[str, T], key: str) -> Map[str, T]:
    return m.delete(key) if key in m else m


def _with(index: Map[str, str], keys: Iterable[str], call_id: str,
          added: list[str], robbed: set[str]) -> Map[str, str]:
    """`index` with every key mapped to `call_id`, those it lacked appended to `added` and the
    calls it took one from added to `robbed`: the same map when it has them already (checked
    in C: most steps)."""
    if all(map(call_id.__eq__, map(index.get, keys, repeat("")))):
        return index
    missing = [k for k in keys if index.get(k) != call_id]
    added += missing
    robbed.update(owner for owner in map(index.get, missing) if owner is not None)
    new = index.mutate()
    for k in missing:
        new[k] = call_id
    return new.finish()


def _without(index: Map[str, str], keys: tuple[str, ...], call_id: str) -> Map[str, str]:
    """`index` without those of `keys` it maps to `call_id` (another call may have taken one
    since): the same map when it has none."""
    gone = {k for k in keys if index.get(k) == call_id}
    if not gone:
        return index
    new = index.mutate()
    for k in gone:
        del new[k]
    return new.finish()
