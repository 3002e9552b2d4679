"""With storage.backend s3, an office's recordings are in two places: those waiting to be moved
in the local archive, the rest in the bucket (recorder/storage/upload.py). Retention and
`verify` see both as one RecordingStore: each key goes to the store that owns it.

Its prefix is "" (every path: the SQL that selects a store's rows selects all of the office's),
and its listing is the archive's then the bucket's, which is already key order: archive keys
are absolute paths ("/..."), and '/' sorts before 's' of "s3://".
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from recorder.config.model import Config
from recorder.storage.objects import S3Store, s3_store
from recorder.storage.store import Digest, LocalStore, RecordingStore


class TieredStore:
    def __init__(self, local: LocalStore, bucket: S3Store) -> None:
        if not local.prefix < bucket.prefix:
            raise ValueError("the archive's keys must sort before the bucket's")
        self.local = local
        self.bucket = bucket
        self.prefix = ""

    def _of(self, key: str) -> RecordingStore:
        return self.bucket if self.bucket.owns(key) else self.local

    def owns(self, key: str) -> bool:
        return self.local.owns(key) or self.bucket.owns(key)

    def day_key(self, when: datetime) -> str:
        # Rows and keys from that day on in the archive, and all of the bucket's (checked too).
        return self.local.day_key(when)

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        found = dict.fromkeys(keys, False)
        for store in (self.local, self.bucket):
            mine = [k for k in keys if self._of(k) is store]
            if mine:
                found.update(zip(mine, await store.delete_many(mine), strict=True))
        # What the call page made from a moved recording is local (recorder.api.service).
        calls = {posixpath.basename(posixpath.dirname(k)) for k in keys if self.bucket.owns(k)}
        await asyncio.to_thread(self.local.forget_derived, sorted(calls))
        return [found[k] for k in keys]

    async def tidy(self, keys: Sequence[str]) -> None:
        await self.local.tidy([k for k in keys if self.local.owns(k)])

    def read(self, key: str) -> AsyncIterator[bytes]:
        return self._of(key).read(key)

    async def digest(self, key: str) -> Digest | None:
        return await self._of(key).digest(key)

    async def keys(self, since: str | None = None) -> AsyncIterator[str]:
        for store in (self.local, self.bucket):
            found = store.keys(since)
            async for key in found:
                yield key


@contextlib.asynccontextmanager
async def bucket_if_configured(config: Config) -> AsyncIterator[S3Store | None]:
    """The whole bucket of storage.s3 (its client open while the block runs), or None."""
    if config.storage.s3 is None:
        yield None
        return
    async with s3_store(config.storage.s3) as bucket:
        yield bucket


def store_for(config: Config, bucket: S3Store | None) -> Callable[[str], RecordingStore]:
    """An office's recordings as one store: the archive, and the bucket's part for the office
    when storage.s3 is configured (also after a switch back to local: moved ones stay there)."""
    local = LocalStore(config.storage.archive_dir)

    def of(asterisk_id: str) -> RecordingStore:
        if bucket is None:
            return local
        return TieredStore(local, S3Store(bucket.client, bucket.bucket, asterisk_id))

    return of
