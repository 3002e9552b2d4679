"""Recordings left in Asterisk's spool: filed into the archive, never left behind or deleted blind.

Two kinds reach here. The daemon's own segments whose call it no longer tracks (it crashed after
the recording finished, or the row was closed while the file was still being written): they are
filed against their recording row. And the dialplan's fail-closed fallback: when the app was not
connected, `Stasis()` failed and the dialplan recorded the call itself with MixMonitor (see
dialplan/verbatim.conf); those files become calls of their own, flagged `fallback`.

A fallback file is filed only once its channel is gone (Asterisk answers 404 for the uniqueid in
its name: MixMonitor writes until the channel hangs up), and any file only once unmodified for
`settle_s` — the MixMonitor thread closes its file just after the channel is destroyed
(apps/app_mixmonitor.c: the channel reference goes before mixmonitor_ds_close_fs). A file not
ready is left for the next sweep. Unknown files are logged and left alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, RecordingRow
from recorder.storage.archive import Archive, ArchiveFull
from recorder.storage.spool import FallbackRecording, OwnRecording, UnknownFile, scan

log = structlog.get_logger("verbatim.recovery")


def fallback_call_id(started_at: datetime, asterisk_id: str, uniqueid: str) -> str:
    # Same shape as the model's call ids, so searches and archive paths look alike.
    digest = hashlib.sha256(f"{asterisk_id}/fallback/{uniqueid}".encode()).hexdigest()[:8]
    return f"{started_at:%Y%m%dT%H%M%S}-{digest}"


# Whether Asterisk's channel with this uniqueid is gone: True, False (still up), or None (Asterisk
# cannot tell now: the file waits for the next sweep).
ChannelGone = Callable[[str], Awaitable[bool | None]]


class SpoolSweeper:
    def __init__(
        self, spool_dir: Path, archive: Archive, repo: Repository, settle_s: float = 5.0,
        sweep_s: float = 15.0,
    ) -> None:
        self.spool_dir = spool_dir
        self.archive = archive
        self.repo = repo
        self.settle_s = settle_s
        self.sweep_s = sweep_s  # how often the daemon sweeps
        self._reported: set[Path] = set()
        self._lock = asyncio.Lock()  # one sweep at a time: a file is filed once

    def has_fallback(self, uniqueid: str) -> bool:
        """Whether a fallback file of the channel `uniqueid` is in the spool. Blocking."""
        return any(self.spool_dir.glob(f"fallback-*-{glob.escape(uniqueid)}-*"))

    async def sweep(self, asterisk_id: str, live_names: set[str], channel_gone: ChannelGone,
                    uniqueid: str | None = None) -> int:
        """File what is ready (only the fallback files of channel `uniqueid`, if given);
        return how many files were filed."""
        async with self._lock:
            return await self._sweep(asterisk_id, live_names, channel_gone, uniqueid)

    async def _sweep(self, asterisk_id: str, live_names: set[str], channel_gone: ChannelGone,
                     uniqueid: str | None) -> int:
        filed = 0
        try:
            entries = await asyncio.to_thread(scan, self.spool_dir)
        except OSError as exc:
            log.error("spool.unreadable", spool_dir=str(self.spool_dir), error=str(exc))
            return 0
        now = datetime.now(UTC)
        settle = timedelta(seconds=self.settle_s)
        for entry in entries:
            if uniqueid is not None and not (
                    isinstance(entry, FallbackRecording) and entry.uniqueid == uniqueid):
                continue
            if isinstance(entry, UnknownFile):
                if entry.path not in self._reported:
                    self._reported.add(entry.path)
                    log.warning("spool.unknown_file", path=str(entry.path), reason=entry.reason)
                continue
            if now - entry.mtime < settle:
                continue
            try:
                if isinstance(entry, OwnRecording):
                    if entry.name not in live_names:
                        filed += await self._file_own(asterisk_id, entry)
                elif isinstance(entry, FallbackRecording) and await channel_gone(entry.uniqueid):
                    filed += await self._file_fallback(asterisk_id, entry)
            except ArchiveFull as exc:  # the designed wait: safe in the spool, filed by a
                # later sweep; the disk's own alarms (disk.critical, archive.full) say it once
                log.debug("spool.waiting_for_space", path=str(entry.path), error=str(exc))
            except Exception as exc:  # one bad file must not stop the others
                log.error("spool.file_failed", path=str(entry.path), error=str(exc))
        return filed

    async def _file_own(self, asterisk_id: str, entry: OwnRecording) -> int:
        row = await self.repo.recording(asterisk_id, entry.name)
        if row is None:
            if entry.path not in self._reported:
                self._reported.add(entry.path)
                log.error("spool.unknown_recording", recording=entry.name, path=str(entry.path))
            return 0
        result = await self.archive.file(
            entry.path,
            call_id=row.call_id,
            name=row.name,
            started_at=row.started_at or row.requested_at,
            fmt=entry.fmt,
        )
        status = row.status if row.status == "failed" else "filed"
        await self.repo.save_recording(
            dataclasses.replace(
                row,
                status=status,
                # (a recording that waited for space in the archive: no longer waiting)
                error=None if row.status == "finished" else row.error,
                path=str(result.path),
                sha256=result.sha256,
                bytes=result.bytes,
                duration_ms=result.duration_ms,
                ended_at=row.ended_at or entry.mtime,
            )
        )
        await self.repo.add_events(
            [
                EventRow(
                    call_id=row.call_id,
                    asterisk_id=asterisk_id,
                    at=datetime.now(UTC),
                    kind="recording.recovered",
                    recording_name=row.name,
                    detail={"sha256": result.sha256, "duration_ms": result.duration_ms},
                )
            ]
        )
        log.warning(
            "recording.recovered",
            call_id=row.call_id,
            recording=row.name,
            path=str(result.path),
            duration_ms=result.duration_ms,
        )
        return 1

    async def _file_fallback(self, asterisk_id: str, entry: FallbackRecording) -> int:
        call_id = fallback_call_id(entry.started_at, asterisk_id, entry.uniqueid)
        name = entry.name
        result = await self.archive.file(
            entry.path, call_id=call_id, name=name, started_at=entry.started_at, fmt=entry.fmt
        )
        ended_at = entry.started_at + timedelta(milliseconds=result.duration_ms or 0)
        call = CallRow(
            call_id=call_id,
            asterisk_id=asterisk_id,
            direction=entry.direction,
            caller_number=entry.from_number,
            caller_e164=None,
            callee_number=entry.to_number,
            callee_e164=None,
            extension=None,
            department=None,
            started_at=entry.started_at,
            answered_at=None,
            ended_at=ended_at,
            outcome="unknown",
            status="ended",
            fallback=True,
        )
        recording = RecordingRow(
            asterisk_id=asterisk_id,
            name=name,
            call_id=call_id,
            segment=1,
            target=f"mixmonitor:{entry.uniqueid}",
            format=entry.fmt,
            status="filed",
            requested_at=entry.started_at,
            started_at=entry.started_at,
            ended_at=ended_at,
            path=str(result.path),
            duration_ms=result.duration_ms,
            bytes=result.bytes,
            sha256=result.sha256,
            fallback=True,
        )
        await self.repo.save_call(call, [], [recording])
        log.warning(
            "recording.fallback_imported",
            call_id=call_id,
            recording=name,
            uniqueid=entry.uniqueid,
            duration_ms=result.duration_ms,
        )
        return 1
