"""Everything a call's page and its whole-call playback show, loaded once per request: the
call's rows (in the user's scope), its last state, its timeline, and where its files are."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from recorder.api.access_log import Origin
from recorder.api.auth import Principal
from recorder.api.service import CallService
from recorder.model import snapshot
from recorder.model.state import Call
from recorder.storage.audio import AudioError
from recorder.web import playback, timeline
from recorder.web.words import Names

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CallView:
    parts: dict[str, Any]  # CallService.parts
    story: dict[str, Any]  # CallService.story
    names: Names
    timeline: timeline.Timeline
    files: dict[str, Path]  # filed recordings in the archive, by name
    audio_start: datetime | None  # where the whole-call playback starts (None: no audio)
    pieces: list[playback.Piece]


def _state(raw: Any, call_id: str) -> Call | None:
    if not isinstance(raw, dict):
        return None
    try:
        return snapshot.decode(raw)
    except (TypeError, ValueError, KeyError) as exc:  # a snapshot of another version
        log.warning("call.state_unreadable", call_id=call_id, error=str(exc))
        return None


def segment_names(recordings: list[dict[str, Any]], parties: dict[str, str]) -> dict[str, str]:
    """name -> "segment 2 (the caller's side)": hook mode records each party on its own."""
    out = {}
    for rec in recordings:
        target = str(rec.get("target") or "")
        side = ""
        if target.startswith("snoop:"):
            who = parties.get(target.removeprefix("snoop:"), "")
            who = "the caller" if who.startswith("the caller") else who.split(" (")[0]
            side = f" ({who}'s side)" if who else ""
        out[rec["name"]] = f"segment {rec['segment']}{side}"
    return out


async def load(calls: CallService, principal: Principal, call_id: str, origin: Origin,
               action: str) -> CallView:  # fmt: skip
    parts = await calls.parts(principal, call_id, action, origin)
    story = await calls.story(principal, call_id)
    state = _state(story["state"], call_id)
    parties = timeline.party_names(parts["call"], parts["legs"], state, parts["events"])
    names = Names(parties, segment_names(parts["recordings"], parties))
    tl = timeline.build(parts["call"], parts["legs"], parts["recordings"], parts["events"],
                        parts["consent"] or [], story["gaps"], state, names)  # fmt: skip
    files = await calls.archive_files(call_id)
    start, pieces = playback.pieces(tl.tracks, files)
    return CallView(parts, story, names, tl, files, start, pieces)


async def waveforms(view: CallView, archive: Path) -> dict[str, list[float]]:
    """Each filed recording's waveform (computed the first time, then read back)."""
    out: dict[str, list[float]] = {}
    for rec in view.parts["recordings"]:
        path = view.files.get(rec["name"])
        if path is None or not rec.get("sha256"):
            continue
        try:
            out[rec["name"]] = await asyncio.to_thread(
                playback.waveform, archive, view.parts["call"]["call_id"], rec["name"], path,
                rec["sha256"])  # fmt: skip
        except (AudioError, OSError, ValueError) as exc:
            log.warning("recording.waveform_failed", recording=rec["name"], error=str(exc))
    return out
