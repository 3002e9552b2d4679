"""Where recordings' bytes are kept, as retention and verification need it: read them, hash
them, delete them, list them. The local archive is one such store; an object store (S3) or an
encrypting store can be another without the purge or `verify` changing.

A key is what `recordings.path` holds: for the local archive, the file's absolute path. `keys()`
lists a store's keys in ascending code-point order (what PostgreSQL's COLLATE "C" gives, and
what S3's ListObjectsV2 returns), so a listing and a query can be merged in bounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol, TypeVar

from recorder.storage.archive import file_digest

_CHUNK = 1 << 20
_LIST_BATCH = 2000
# Deleting a file or a folder waits on the file system's journal far more than it uses the CPU
# (on ext4 under load ~1.5 ms each, 40 us of CPU): a purge's batch is spread over this many
# threads of their own, so it neither waits on one at a time nor fills the event loop's
# default pool that the daemon's other work uses.
_FILE_THREADS: Final = 8
T = TypeVar("T")
R = TypeVar("R")
# One pool for the process, made at the first batch and never shut down, on purpose: every
# store of the process shares it (the daemon's purges, the CLI's, a test's several daemons),
# so no one store's stop may close it under another's batch; idle threads cost nothing; and
# at interpreter exit concurrent.futures' own hook lets queued deletes finish and joins the
# threads (a delete is idempotent: a purge stopped meanwhile finds the file gone next time).
_file_pool: ThreadPoolExecutor | None = None


async def _spread(work: Callable[[list[T]], list[R]], items: list[T]) -> list[R]:
    """work(items) on the file threads, in up to _FILE_THREADS slices; results in order."""
    global _file_pool
    if _file_pool is None:
        _file_pool = ThreadPoolExecutor(_FILE_THREADS, thread_name_prefix="verbatim-files")
    loop = asyncio.get_running_loop()
    slices = [items[i::_FILE_THREADS] for i in range(min(_FILE_THREADS, len(items)))]
    done = await asyncio.gather(*(loop.run_in_executor(_file_pool, work, s) for s in slices))
    return [done[i % len(slices)][i // len(slices)] for i in range(len(items))]


@dataclass(frozen=True)
class Digest:
    sha256: str  # hex
    size: int  # bytes


class RecordingStore(Protocol):
    # Every key of this store starts with it; SQL selects a store's rows by it.
    prefix: str

    def owns(self, key: str) -> bool:
        """Whether `key` names something in this store (not another archive's file)."""

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """Delete each key; for each, whether it existed. Deleting a missing key is not an
        error: a purge finishing after a crash finds some already gone."""

    async def tidy(self, keys: Sequence[str]) -> None:
        """After deleting `keys`: remove what that left empty (the local archive's call
        folders). Best effort, and never needed for correctness."""

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The bytes, in chunks; FileNotFoundError when there is no such key."""

    async def digest(self, key: str) -> Digest | None:
        """The SHA-256 and size of the bytes, or None when there is no such key."""

    def day_key(self, when: datetime) -> str:
        """The first key a recording of that day (UTC) could have."""

    def keys(self, since: str | None = None) -> AsyncIterator[str]:
        """Every key, ascending; with `since` (a key prefix such as the archive's
        "<root>/2026/03/01"), only keys at or after it."""


# Files made from a call's recordings (recorder.web.playback), under <archive>/.derived/<call>/.
DERIVED: Final = ".derived"


class LocalStore:
    """The archive directory of recorder.storage.archive (<root>/<yyyy>/<mm>/<dd>/<call>/...).
    Hidden names (the filer's temporary ".name.xxxx.tmp") are not recordings."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.prefix = str(self.root).rstrip("/") + "/"

    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix) and ".." not in key

    def day_key(self, when: datetime) -> str:
        return self.prefix + f"{when.astimezone(UTC):%Y/%m/%d}"

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        for key in keys:
            if not self.owns(key):
                raise ValueError(f"{key} is not in the archive {self.root}")
        return await _spread(self._delete_many, list(keys))

    def _delete_many(self, keys: list[str]) -> list[bool]:
        found = []
        for key in keys:
            try:
                os.unlink(key)
                found.append(True)
            except FileNotFoundError:
                found.append(False)
            # What was made from the call's audio (the call page's whole-call mix, waveforms)
            # goes with it: no copy of a recording outlives its class.
            self.forget_derived([os.path.basename(os.path.dirname(key))])
        return found

    def forget_derived(self, call_ids: Sequence[str]) -> None:
        """Delete what the call page made from these calls' audio. Blocking."""
        for call_id in call_ids:
            if call_id and call_id not in (".", ".."):
                shutil.rmtree(self.root / DERIVED / call_id, ignore_errors=True)

    async def tidy(self, keys: Sequence[str]) -> None:
        # A call's folder goes with its last recording; one still holding files stays. rmdir
        # costs ext4 ten times an unlink: the purge runs this beside its next batch.
        await _spread(self._tidy, sorted({os.path.dirname(k) for k in keys}))

    def _tidy(self, folders: list[str]) -> list[None]:
        for folder in folders:
            if self.owns(folder + "/"):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        return [None] * len(folders)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(open, key, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, _CHUNK):
                yield chunk
        finally:
            f.close()

    async def digest(self, key: str) -> Digest | None:
        return await asyncio.to_thread(self._digest, key)

    @staticmethod
    def _digest(key: str) -> Digest | None:
        try:
            sha, size = file_digest(key)
        except FileNotFoundError:
            return None
        return Digest(sha, size)

    async def keys(self, since: str | None = None) -> AsyncIterator[str]:
        walk = self._walk(str(self.root).rstrip("/"), since)
        while batch := await asyncio.to_thread(_take, walk, _LIST_BATCH):
            for key in batch:
                yield key

    def _walk(self, directory: str, since: str | None) -> Iterator[str]:
        try:
            with os.scandir(directory) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return
        # A folder's keys all start with "<name>/": sorting folders by that makes the walk's
        # order the keys' order ("a.wav" < "a/x.wav" since '.' < '/').
        entries.sort(key=lambda entry: entry[0] + "/" if entry[1] else entry[0])
        for name, is_dir in entries:
            if name.startswith("."):
                continue
            path = f"{directory}/{name}"
            if is_dir:
                inside = path + "/"
                if since is None or inside >= since or since.startswith(inside):
                    yield from self._walk(path, since)
            elif since is None or path >= since:
                yield path


def _take(it: Iterator[str], n: int) -> list[str]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out
