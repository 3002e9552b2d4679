"""Moving filed recordings from the local archive into the object store (storage.backend: s3).

The daemon files every recording into the local archive as with the local backend; this task
then moves each one: upload (with its SHA-256, which the store checks), confirm the stored
object's hash, then in one transaction point recordings.path at the object, write an uploads
row and a 'moved' custody event, and only after that commit remove the local file.

What is still to move is in PostgreSQL, nowhere else: the office's filed recordings whose path
is local (migration 0009). While the store is down they wait in the archive, and the move is
retried, waiting twice as long each time up to retry_max_s. A crash anywhere loses nothing: before
the commit the local file is still the recording (an upload again puts the same bytes under the
same key), after it the uploads row names the local file still to remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from recorder.common.background import beside
from recorder.config.model import Config
from recorder.keeping import custody
from recorder.storage.archive import file_digest
from recorder.storage.objects import S3Store
from recorder.storage.store import LocalStore

log = structlog.get_logger("verbatim.upload")

# stored_*: the file's own bytes, the ciphertext's when it is encrypted (recording_keys).
_PENDING = """
    SELECT r.name, r.call_id, r.path, r.sha256, r.bytes,
           coalesce(k.stored_sha256, r.sha256) AS stored_sha256,
           coalesce(k.stored_bytes, r.bytes) AS stored_bytes
    FROM recordings r LEFT JOIN recording_keys k ON k.call_id = r.call_id AND k.name = r.name
    WHERE r.asterisk_id = $1 AND r.status = 'filed' AND r.path NOT LIKE 's3://%'
      AND starts_with(r.path, $2) AND r.name <> ALL($3::text[])
    ORDER BY r.name LIMIT $4
"""
_UNREMOVED = """
    SELECT name, local_path FROM uploads WHERE asterisk_id = $1 AND local_removed_at IS NULL
    LIMIT $2
"""
_MOVE = """
    UPDATE recordings SET path = $3, updated_at = now()
    WHERE asterisk_id = $1 AND name = $2 AND path = $4 AND status = 'filed' AND sha256 = $5
"""
_UPLOADED = """
    INSERT INTO uploads (asterisk_id, name, local_path, key, sha256, bytes)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (asterisk_id, name) DO UPDATE SET local_path = EXCLUDED.local_path,
        key = EXCLUDED.key, sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes,
        uploaded_at = clock_timestamp(), local_removed_at = NULL
"""
_WAITING = """
    SELECT count(*) FROM (SELECT 1 FROM recordings
        WHERE asterisk_id = $1 AND status = 'filed' AND path NOT LIKE 's3://%'
          AND starts_with(path, $2) LIMIT 100000) w
"""
_REMOVED = """
    UPDATE uploads SET local_removed_at = clock_timestamp() WHERE asterisk_id = $1 AND name = $2
"""


@dataclass
class Round:
    moved: int = 0
    waiting: bool = False  # more to move than one round takes


@dataclass
class UploadStatus:
    """For the health line and /metrics (recorder.service.metrics)."""

    waiting: int = 0  # filed recordings still in the archive, after the last round (capped)
    failing: bool = False  # the last round failed: the store (or the database) is away
    moved_total: int = 0  # since the process started
    failed_rounds: int = 0  # since the process started: each retry while the store is away


class Uploader:
    def __init__(
        self, pool: Any, archive: LocalStore, store: S3Store, asterisk_id: str, *,
        batch: int = 50, status: UploadStatus | None = None,
    ) -> None:  # fmt: skip
        self.status = status or UploadStatus()
        self.pool = pool
        self.archive = archive
        self.store = store
        self.asterisk_id = asterisk_id
        self.batch = batch
        # Recordings this run could not move for a reason retrying will not fix (the local
        # file is gone or not what was filed): reported once, left for `verify`.
        self.skipped: set[str] = set()
        self._tidied = False  # unfinished multipart uploads aborted, once per run

    async def move_round(self) -> Round:
        """Finish interrupted removals, then move up to `batch` recordings. Raises when the
        store or the database fails; nothing is lost then, the next round goes on."""
        if not self._tidied:
            # Before this run's first upload: every unfinished one is a dead run's.
            aborted = await self.store.abort_unfinished()
            if aborted:
                log.info("upload.unfinished_aborted", count=len(aborted), keys=aborted[:5])
            self._tidied = True
        async with self.pool.acquire() as conn:
            unremoved = await conn.fetch(_UNREMOVED, self.asterisk_id, self.batch)
        for row in unremoved:
            await self._remove_local(row["name"], row["local_path"])
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_PENDING, self.asterisk_id, self.archive.prefix,
                                    sorted(self.skipped), self.batch)  # fmt: skip
        done = Round(waiting=len(rows) >= self.batch)
        for row in rows:
            if await self._move(row):
                done.moved += 1
                self.status.moved_total += 1
        async with self.pool.acquire() as conn:
            self.status.waiting = await conn.fetchval(_WAITING, self.asterisk_id,
                                                      self.archive.prefix)  # fmt: skip
        return done

    async def _move(self, row: Any) -> bool:
        local, name, sha = row["path"], row["name"], row["sha256"]
        key = self.store.key_for(local[len(self.archive.prefix):])
        try:
            # Hashed first: a file altered or damaged since filing would be refused by the
            # store at every round, first in line, and hold back every recording after it.
            found, _size = await asyncio.to_thread(file_digest, local)
            if found != row["stored_sha256"]:
                self._skip(name, local, "the local file is not what was filed: its SHA-256 "
                           f"is {found}, filed as {row['stored_sha256']} (altered or damaged)")
                return False
            await self.store.put(key, Path(local), row["stored_sha256"])
        except FileNotFoundError:
            self._skip(name, local, "the local file is gone")
            return False
        if not await self.store.confirm(key, row["stored_sha256"], row["stored_bytes"]):
            self._skip(name, local, "the store holds other bytes than were filed")
            return False
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await conn.execute(_MOVE, self.asterisk_id, name, key, local, sha)
            if moved != "UPDATE 1":  # purged (or changed) meanwhile: the upload is not needed
                log.info("upload.superseded", recording=name, key=key)
                await self.store.delete_many([key])
                return False
            await conn.execute(_UPLOADED, self.asterisk_id, name, local, key, sha, row["bytes"])
            await custody.append(conn, self.asterisk_id, "moved", call_id=row["call_id"],
                                 asterisk_id=self.asterisk_id, recording_name=name,
                                 subject_sha256=sha, detail={"from": local, "to": key})  # fmt: skip
        log.info("recording.uploaded", call_id=row["call_id"], recording=name, key=key,
                 bytes=row["bytes"])  # fmt: skip
        await self._remove_local(name, local)
        return True

    async def _remove_local(self, name: str, local: str) -> None:
        if self.archive.owns(local):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, local)
            await self.archive.tidy([local])
        async with self.pool.acquire() as conn:
            await conn.execute(_REMOVED, self.asterisk_id, name)

    def _skip(self, name: str, local: str, why: str) -> None:
        self.skipped.add(name)
        log.error("upload.impossible", recording=name, path=local, error=why,
                  action="left in the archive; `verbatim verify` reports it")  # fmt: skip


async def uploading(
    uploader_for: Callable[[str], Uploader], ready: asyncio.Event, office: Callable[[], str],
    *, idle_s: float = 5.0, retry_max_s: float = 60.0,
) -> None:  # fmt: skip
    """Run until cancelled: a round every idle_s (at once while a backlog lasts); after a failure,
    again after 1 s, 2 s, 4 s … up to retry_max_s (so the first round once the store is back
    comes at most retry_max_s after it), with one warning per outage."""
    await ready.wait()  # the daemon knows its asterisk_id
    uploader = uploader_for(office())
    first = min(1.0, retry_max_s)  # a bound below 1 s bounds the first wait too
    wait, failing = first, False
    while True:
        try:
            done = await uploader.move_round()
        except Exception as exc:  # the store or the database is away: the recordings wait
            uploader.status.failing = True
            uploader.status.failed_rounds += 1
            if not failing:
                log.warning("upload.failed", error=f"{type(exc).__name__}: {exc}",
                            action="recordings wait in the archive; retrying")  # fmt: skip
            failing = True
            await asyncio.sleep(wait)
            wait = min(wait * 2, retry_max_s)
            continue
        if failing:
            log.info("upload.resumed")
        wait, failing = first, False
        uploader.status.failing = False
        if not done.waiting:
            await asyncio.sleep(idle_s)


@contextlib.asynccontextmanager
async def uploads_if_s3(
    config: Config, pool: Any, bucket: S3Store | None, ready: asyncio.Event,
    office: Callable[[], str], *, idle_s: float = 5.0, status: UploadStatus | None = None,
) -> AsyncIterator[None]:  # fmt: skip
    """For `verbatim run` with storage.backend s3: move filed recordings into `bucket` (the
    whole bucket, open) beside the block."""
    s3 = config.storage.s3
    if config.storage.backend != "s3" or s3 is None or bucket is None:
        yield
        return
    archive = LocalStore(config.storage.archive_dir)

    def uploader_for(asterisk_id: str) -> Uploader:
        store = S3Store(bucket.client, bucket.bucket, asterisk_id, bucket.multipart)
        return Uploader(pool, archive, store, asterisk_id, status=status)

    work = uploading(uploader_for, ready, office, idle_s=idle_s, retry_max_s=s3.retry_max_s)
    async with beside(work, "verbatim-uploads"):
        yield
