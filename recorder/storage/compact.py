"""A compact copy of each filed recording (storage.compact): Opus in Ogg, or MP3, by ffmpeg.

The copy is made from the archived original only once that file still hashes to the SHA-256 it
was filed with, then hashed itself; one transaction records both (migration 0011) with a
'compacted' custody event. With keep_original the copy is a second file beside the original;
without, it becomes the recording (played, purged and verified from then on), the original's
hash stays in original_sha256, and its file is deleted after that commit (original_path names
it until then, so a crash in between only delays the deletion).

What is still to compact is in PostgreSQL: the office's filed recordings without compact_sha256.
A crash before the commit leaves at most a copy the next round writes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from recorder.common.background import beside
from recorder.config.model import COMPACT_FORMATS, CompactConfig, Config
from recorder.keeping import custody
from recorder.storage.archive import FILE_MODE, file_digest, fsync_dir
from recorder.storage.store import LocalStore

log = structlog.get_logger("verbatim.compact")

# Asterisk's headerless formats, as ffmpeg must be told to read them.
_RAW_INPUT: Final = {
    "ulaw": ("-f", "mulaw", "-ar", "8000", "-ac", "1"),
    "alaw": ("-f", "alaw", "-ar", "8000", "-ac", "1"),
    "sln16": ("-f", "s16le", "-ar", "16000", "-ac", "1"),
    "gsm": ("-f", "gsm", "-ar", "8000", "-ac", "1"),
}
_CONTAINER: Final = {"opus": "ogg", "mp3": "mp3"}

_PENDING = """
    SELECT name, call_id, path, sha256, bytes, format FROM recordings
    WHERE asterisk_id = $1 AND status = 'filed' AND compact_sha256 IS NULL
      AND starts_with(path, $2) AND name <> ALL($3::text[])
    ORDER BY name LIMIT $4
"""
_KEEP = """
    UPDATE recordings SET compact_path = $5, compact_format = $6, compact_sha256 = $7,
        compact_bytes = $8, updated_at = now()
    WHERE asterisk_id = $1 AND name = $2 AND path = $3 AND sha256 = $4 AND status = 'filed'
      AND compact_sha256 IS NULL
"""
_DROP = """
    UPDATE recordings SET compact_path = $5, compact_format = $6, compact_sha256 = $7,
        compact_bytes = $8, original_path = path, original_sha256 = sha256,
        original_bytes = bytes, original_format = format,
        path = $5, format = $6, sha256 = $7, bytes = $8, updated_at = now()
    WHERE asterisk_id = $1 AND name = $2 AND path = $3 AND sha256 = $4 AND status = 'filed'
      AND compact_sha256 IS NULL
"""
_UNREMOVED = """
    SELECT name, original_path FROM recordings
    WHERE asterisk_id = $1 AND original_path IS NOT NULL LIMIT $2
"""
_REMOVED = "UPDATE recordings SET original_path = NULL WHERE asterisk_id = $1 AND name = $2"


class CompactError(Exception):
    """ffmpeg could not encode a recording (its audio is not decodable)."""


class FfmpegMissing(Exception):
    """No ffmpeg on the PATH: nothing can be compacted until it is installed."""


def ffmpeg_args(source: Path, source_format: str, target: Path, c: CompactConfig) -> list[str]:
    """The ffmpeg command that encodes `source` into `target` as configured. Mono, no metadata
    from the source: a copy of the audio, nothing else."""
    encoder = COMPACT_FORMATS[c.format][0]
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            *_RAW_INPUT.get(source_format, ()), "-i", str(source), "-map_metadata", "-1",
            "-ac", "1", "-c:a", encoder, "-b:a", f"{c.bitrate_kbps}k",
            "-f", _CONTAINER[c.format], str(target)]  # fmt: skip


async def encode(source: Path, source_format: str, target: Path, c: CompactConfig) -> None:
    """Write the compact copy of `source` to `target` (through a temporary file beside it,
    fsynced, mode 0640)."""
    tmp = target.with_name(f".tmp-{secrets.token_hex(6)}-{target.name}")
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *ffmpeg_args(source, source_format, tmp, c),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)  # fmt: skip
        except FileNotFoundError as exc:
            raise FfmpegMissing("ffmpeg is not installed (storage.compact needs it)") from exc
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise CompactError(f"ffmpeg exited {proc.returncode}: "
                               f"{err.decode(errors='replace').strip()[-300:]}")  # fmt: skip
        await asyncio.to_thread(_settle, tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, tmp)


def _settle(tmp: Path, target: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, target)
    # the new name durable before PostgreSQL is told of it: else a power cut could leave a
    # row pointing at a copy that never was, and its original removed (`_UNREMOVED`)
    fsync_dir(target.parent)


@dataclass
class CompactStatus:
    made_total: int = 0  # since the process started
    failing: bool = False


class Compactor:
    def __init__(
        self, pool: Any, archive: LocalStore, config: CompactConfig, asterisk_id: str, *,
        batch: int = 20,
    ) -> None:  # fmt: skip
        self.pool = pool
        self.archive = archive
        self.config = config
        self.asterisk_id = asterisk_id
        self.batch = batch
        self.status = CompactStatus()
        # Recordings whose file is gone or not what was filed: reported once, left for verify.
        self.skipped: set[str] = set()

    async def round(self) -> int:
        """Finish interrupted deletions of originals, then compact up to `batch` recordings;
        how many. Raises when the database or ffmpeg fails; the next round goes on."""
        async with self.pool.acquire() as conn:
            unremoved = await conn.fetch(_UNREMOVED, self.asterisk_id, self.batch)
        for row in unremoved:
            await self._remove_original(row["name"], row["original_path"])
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_PENDING, self.asterisk_id, self.archive.prefix,
                                    sorted(self.skipped), self.batch)  # fmt: skip
        made = 0
        for row in rows:
            made += await self._compact(row)
        self.status.made_total += made
        return made

    async def _compact(self, row: Any) -> int:
        source, name, sha = Path(row["path"]), row["name"], row["sha256"]
        try:
            found, _ = await asyncio.to_thread(file_digest, source)
        except FileNotFoundError:
            found = None
        if found != sha:
            self._skip(name, source, "the file is gone" if found is None else
                       "the file is not what was filed")  # fmt: skip
            return 0
        suffix = COMPACT_FORMATS[self.config.format][1]
        target = source.with_suffix(f".{suffix}")
        try:
            await encode(source, row["format"], target, self.config)
        except CompactError as exc:
            self._skip(name, source, str(exc))
            return 0
        copy_sha, copy_bytes = await asyncio.to_thread(file_digest, target)
        keep = self.config.keep_original
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(_KEEP if keep else _DROP, self.asterisk_id, name,
                                      str(source), sha, str(target), suffix, copy_sha,
                                      copy_bytes)  # fmt: skip
            if done != "UPDATE 1":  # purged meanwhile: the copy is not wanted
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(os.unlink, target)
                return 0
            await custody.append(conn, self.asterisk_id, "compacted", call_id=row["call_id"],
                                 asterisk_id=self.asterisk_id, recording_name=name,
                                 subject_sha256=copy_sha,
                                 detail={"from": str(source), "to": str(target),
                                         "original_sha256": sha, "format": suffix,
                                         "original_kept": keep})  # fmt: skip
        log.info("recording.compacted", call_id=row["call_id"], recording=name,
                 bytes=row["bytes"], compact_bytes=copy_bytes, original_kept=keep)  # fmt: skip
        if not keep:
            await self._remove_original(name, str(source))
        return 1

    def _skip(self, name: str, source: Path, why: str) -> None:
        self.skipped.add(name)
        log.error("compact.impossible", recording=name, path=str(source), error=why,
                  action="no compact copy; the original stays")  # fmt: skip

    async def _remove_original(self, name: str, path: str) -> None:
        if self.archive.owns(path):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, path)
        async with self.pool.acquire() as conn:
            await conn.execute(_REMOVED, self.asterisk_id, name)


async def compacting(
    compactor_for: Callable[[str], Compactor], ready: asyncio.Event, office: Callable[[], str],
    *, idle_s: float = 5.0, retry_max_s: float = 60.0,
) -> None:  # fmt: skip
    """Run until cancelled: a round every idle_s (at once while a backlog lasts); after a
    failure again after 1 s, 2 s, 4 s … up to retry_max_s, with one error per failure spell."""
    await ready.wait()  # the daemon knows its asterisk_id
    compactor = compactor_for(office())
    wait = 1.0
    while True:
        try:
            made = await compactor.round()
        except Exception as exc:  # ffmpeg or the database: the originals are untouched
            if not compactor.status.failing:
                log.error("compact.failed", error=f"{type(exc).__name__}: {exc}",
                          action="recordings stay as filed; retrying")  # fmt: skip
            compactor.status.failing = True
            await asyncio.sleep(wait)
            wait = min(wait * 2, retry_max_s)
            continue
        if compactor.status.failing:
            log.info("compact.resumed")
        compactor.status.failing, wait = False, 1.0
        if made < compactor.batch:
            await asyncio.sleep(idle_s)


@contextlib.asynccontextmanager
async def compacts_if_configured(
    config: Config, pool: Any, ready: asyncio.Event, office: Callable[[], str],
    *, idle_s: float = 5.0,
) -> AsyncIterator[None]:  # fmt: skip
    """For `verbatim run` with storage.compact: compact copies beside the block."""
    compact = config.storage.compact
    if compact is None:
        yield
        return
    archive = LocalStore(config.storage.archive_dir)

    def compactor_for(asterisk_id: str) -> Compactor:
        return Compactor(pool, archive, compact, asterisk_id)

    async with beside(compacting(compactor_for, ready, office, idle_s=idle_s), "verbatim-compact"):
        yield
