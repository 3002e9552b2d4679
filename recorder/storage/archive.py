"""The recordings archive: <root>/<yyyy>/<mm>/<dd>/<call_id>/<name>.<fmt>, date in UTC.

A recording is only "filed" once its bytes are durable under its final name, so files are written
to a temporary name in the target directory, fsynced, then linked into place (link, unlike rename,
never replaces an existing file) and the directory fsynced. The spool copy is deleted afterwards:
the archive's modes (dirs 0750, files 0640) are the access control, a stray copy would escape it.

Filing is idempotent: the same content already under the target name just drops the source. Other
content under that name is never overwritten; the new file gets a suffix from its own hash and
FiledRecording.conflict_with names the file it collided with, for the caller to report.

With storage.encryption (an Archive given RecordingKeys), the file is the recording's Tink
ciphertext (recorder/storage/crypt.py): the plaintext is hashed and measured as it is read and
encrypted, the ciphertext hashed as it is written. "The same content" is then the same plaintext
(a file already there is decrypted to compare). A filing from ARI's stream (no spool file) is
encrypted as it arrives. Plaintext never rests in the archive: what has to be measured from a
file (its duration, by probe or ffmpeg) is a copy in a private temporary directory (mode 0700,
outside the archive), removed as soon as it is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from recorder.storage.audio import AudioError, probe

if TYPE_CHECKING:
    from recorder.storage.crypt import DataKey
    from recorder.storage.keys import RecordingKeys

DIR_MODE = 0o750
FILE_MODE = 0o640
_CHUNK = 1 << 20
# Path components: a letter or digit first (so never "." or ".." or a hidden/temp name), then a
# conservative set. '+' and '.' appear in the dialplan fallback's names (numbers, uniqueids).
SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
SAFE_FORMAT = re.compile(r"^[A-Za-z0-9]{1,16}$")


class ArchiveError(Exception):
    """Unsafe names, unusable paths, or a spool copy that could not be deleted (then `filed`
    says where the recording is: it is in the archive, but the spool still holds a copy)."""

    def __init__(self, message: str, filed: FiledRecording | None = None) -> None:
        super().__init__(message)
        self.filed = filed


class ArchiveFull(ArchiveError):
    """The archive's filesystem is full (or over quota): the recording stays in the spool,
    safe, measured in `filed` (its path the spool file), to be filed when space returns."""


@dataclass(frozen=True)
class FiledRecording:
    path: Path
    sha256: str
    bytes: int
    duration_ms: int | None  # None when the audio could not be measured (see audio_error)
    audio_error: str | None = None  # filed anyway: the bytes are evidence even if undecodable
    already_filed: bool = False  # the same content was already in the archive
    conflict_with: Path | None = None  # different content held the target name: kept both
    # Encrypted: the file's own (ciphertext) SHA-256 and size; sha256 and bytes are the
    # plaintext's. None when the file is the recording as recorded.
    stored_sha256: str | None = None
    stored_bytes: int | None = None


@dataclass(frozen=True)
class _Content:
    """The recording as recorded: what its row will say, whatever the file holds."""

    sha256: str
    size: int
    duration_ms: int | None
    audio_error: str | None


def _content(path: Path, sha256: str, size: int, shown: Path) -> _Content:
    """Measure the plaintext at `path`; errors name `shown` (where the recording goes)."""
    try:
        return _Content(sha256, size, probe(path).duration_ms, None)
    except AudioError as e:
        return _Content(sha256, size, None, str(e).replace(str(path), str(shown)))


def _check(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if not pattern.fullmatch(value) or ".." in value:
        raise ArchiveError(f"unsafe {what} for an archive path: {value!r}")
    return value


def file_digest(path: Path | str) -> tuple[str, int]:
    """The file's SHA-256 (hex) and size, read in chunks. Blocking."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _hash_file(path: Path) -> str:
    return file_digest(path)[0]


def _measure(path: Path, key: DataKey | None) -> FiledRecording | None:
    if key is not None:
        return _measure_sealed(path, key)
    try:
        size = path.stat().st_size
        sha = _hash_file(path)
    except FileNotFoundError:
        return None
    try:
        duration: int | None = probe(path).duration_ms
        audio_error: str | None = None
    except AudioError as e:
        duration, audio_error = None, str(e)
    return FiledRecording(path, sha, size, duration, audio_error, already_filed=True)


_PLAIN_PREFIX = "verbatim-plain-"


@contextlib.contextmanager
def _private_plain(name: str) -> Iterator[Path]:
    """Where plaintext may be written to be measured: `name` in a new directory of mode 0700
    outside the archive, removed with all it holds when the block ends. A process killed
    meanwhile leaves it: the shipped unit's PrivateTmp=yes and the container's tmpfs /tmp go
    with the stopped service, and the next daemon's start removes it (`remove_stale_plain`:
    the folder is named after the process)."""
    folder = tempfile.mkdtemp(prefix=f"{_PLAIN_PREFIX}{os.getpid()}-")  # mode 0700
    try:
        yield Path(folder) / name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_plain(directory: Path | None = None) -> list[Path]:
    """The private plaintext folders (`_private_plain`) of this user's processes that are no
    longer running — a daemon killed while it measured an encrypted recording left decrypted
    audio there — removed; those removed. A running process's folder (another daemon's or
    `verbatim` command's on this host) is its own to remove."""
    removed: list[Path] = []
    for folder in Path(directory or tempfile.gettempdir()).glob(f"{_PLAIN_PREFIX}*-*"):
        pid = folder.name[len(_PLAIN_PREFIX):].split("-", 1)[0]
        try:
            if (not pid.isdigit() or folder.is_symlink() or not folder.is_dir()
                    or folder.stat().st_uid != os.getuid() or _running(int(pid))):
                continue
        except OSError:  # gone meanwhile
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: not ours to judge
        return True
    return True


def _measure_sealed(path: Path, key: DataKey) -> FiledRecording | None:
    """An encrypted file, measured from its plaintext (decrypted into a private directory for
    a moment)."""
    try:
        stored_sha, stored_size = file_digest(path)
    except FileNotFoundError:
        return None
    with _private_plain(path.name) as plain_path:
        plain = _Temp(plain_path.parent, plain_path.name, exact=True)
        with open(path, "rb") as f:
            for chunk in key.plain_range(f, 0, None):
                plain.write(chunk)
        plain.finish()
        c = _content(plain.path, plain.hash.hexdigest(), plain.size, path)
    return FiledRecording(path, c.sha256, c.size, c.duration_ms, c.audio_error, True,
                          stored_sha256=stored_sha, stored_bytes=stored_size)  # fmt: skip


def _same_plaintext(path: Path, sha256: str, key: DataKey) -> bool:
    from recorder.storage.crypt import CryptError

    try:
        with open(path, "rb") as f:
            return key.plain_digest(f)[0] == sha256
    except CryptError:
        return False


def _seal(key: DataKey, plain: BinaryIO, temp: _Temp) -> tuple[str, int]:
    """Encrypt `plain` into `temp` (fsynced); the plaintext's SHA-256 and size."""
    sha, size = key.encrypt(plain, temp)
    temp.finish()
    return sha, size


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Temp:
    """A new file in the target directory, hashed as it is written."""

    def __init__(self, directory: Path, name: str, *, exact: bool = False) -> None:
        # exact: `name` itself (in a private directory: its suffix tells probe the format)
        self.path = directory / (name if exact else f".{name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        if not exact:  # explicit: the umask must not decide who can read recordings
            os.fchmod(fd, FILE_MODE)
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _write_all(temp: _Temp | _Sealing, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        temp.write(chunk)


class _Sealing:
    """A recording arriving in pieces, encrypted as it comes into a temporary file in the
    target directory; the plaintext also goes, to be measured, to a private directory
    (`_private_plain`) that `discard()` removes."""

    def __init__(self, target: Path, key: DataKey) -> None:
        # Both files and the private directory, removed by discard() -- or here, if any step
        # of making them fails (the caller has nothing to close then).
        with contextlib.ExitStack() as made:
            plain_path = made.enter_context(_private_plain(target.name))
            self.plain = _Temp(plain_path.parent, plain_path.name, exact=True)
            made.callback(self.plain.discard)
            self.sealed = _Temp(target.parent, target.name)
            made.callback(self.sealed.discard)
            self._out = contextlib.ExitStack()  # the encrypting stream, until finish()
            self._stream = self._out.enter_context(key.encrypting(self.sealed))
            self._files = made.pop_all()  # made: kept past this block, until discard()

    def write(self, data: bytes) -> None:
        self.plain.write(data)
        self._stream.write(data)

    def finish(self, target: Path) -> _Content:
        """Both files complete (the ciphertext fsynced); the plaintext measured."""
        self._out.close()
        self.sealed.finish()
        self.plain.file.close()
        return _content(self.plain.path, self.plain.hash.hexdigest(), self.plain.size, target)

    def discard(self) -> None:
        """The plaintext gone; the ciphertext's temporary name too (placed or not): as
        `_Temp.discard`, so a filing removes either kind the same way."""
        self._files.close()


async def _made(make: Callable[[], _Temp | _Sealing]) -> _Temp | _Sealing:
    """`make()` in a worker thread. A caller cancelled meanwhile (the daemon stopping) cannot
    take what the thread goes on to make, so it is removed when the thread is done: else a
    temporary file stays in the archive, and the private plaintext folder in /tmp."""
    making = asyncio.ensure_future(asyncio.to_thread(make))
    try:
        return await asyncio.shield(making)
    except asyncio.CancelledError:
        making.add_done_callback(_undo_made)
        raise


def _undo_made(making: asyncio.Future[_Temp | _Sealing]) -> None:
    if making.cancelled() or making.exception() is not None:
        return  # nothing made (the thread never ran), or it removed what it made
    making.result().discard()


def _raise_if_full(e: OSError, src: Path) -> None:
    """Out of space (or quota) in the archive: ArchiveFull, with the spool file measured."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return
    try:
        info = probe(src)
        duration: int | None = info.duration_ms
        audio_error: str | None = None
    except AudioError as exc:
        duration, audio_error = None, str(exc)
    measured = FiledRecording(src, _hash_file(src), src.stat().st_size, duration, audio_error)
    raise ArchiveFull(f"archive full: {e.strerror or e}", measured) from e


class Archive:
    def __init__(self, root: Path, keys: RecordingKeys | None = None) -> None:
        self.root = Path(root)
        self.keys = keys  # storage.encryption: each recording's data key

    async def _placed(self, call_id: str, name: str, filed: FiledRecording) -> FiledRecording:
        if self.keys is not None and filed.stored_sha256 is not None:
            assert filed.stored_bytes is not None
            await self.keys.placed(call_id, name, filed.stored_sha256, filed.stored_bytes)
        return filed

    def target(self, *, call_id: str, name: str, started_at: datetime, fmt: str) -> Path:
        """Where a recording belongs; raises ArchiveError for unsafe names."""
        _check(call_id, "call_id", SAFE_COMPONENT)
        _check(name, "recording name", SAFE_COMPONENT)
        _check(fmt, "format", SAFE_FORMAT)
        if started_at.utcoffset() is None:
            raise ArchiveError(f"started_at is a naive datetime: {started_at!r}")
        day = started_at.astimezone(UTC)
        return self.root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / call_id / f"{name}.{fmt}"

    async def file(
        self,
        src: Path,
        *,
        call_id: str,
        name: str,
        started_at: datetime,
        fmt: str,
        delete_source: bool = True,
    ) -> FiledRecording:
        """Copy a spool file into the archive, then delete the spool copy."""
        target = self.target(call_id=call_id, name=name, started_at=started_at, fmt=fmt)
        key = None if self.keys is None else await self.keys.for_filing(call_id, name)
        try:
            filed = await asyncio.to_thread(self._file_sync, Path(src), target, delete_source,
                                            key)  # fmt: skip
        except ArchiveError as e:
            if e.filed is not None and not isinstance(e, ArchiveFull):
                await self._placed(call_id, name, e.filed)
            raise
        return await self._placed(call_id, name, filed)

    async def already_filed(
        self, *, call_id: str, name: str, started_at: datetime, fmt: str
    ) -> FiledRecording | None:
        """What the archive holds under this recording's name, if anything: a filer asked
        again after a crash (the spool copy is gone) finds it filed, not lost."""
        target = self.target(call_id=call_id, name=name, started_at=started_at, fmt=fmt)
        key = None if self.keys is None else await self.keys.for_reading(call_id, name)
        found = await asyncio.to_thread(_measure, target, key)
        return found if found is None else await self._placed(call_id, name, found)

    async def file_bytes(
        self,
        chunks: AsyncIterable[bytes] | Iterable[bytes],
        *,
        call_id: str,
        name: str,
        started_at: datetime,
        fmt: str,
    ) -> FiledRecording:
        """File a recording streamed from elsewhere (ARI's /recordings/stored/{name}/file)."""
        target = self.target(call_id=call_id, name=name, started_at=started_at, fmt=fmt)
        key = None if self.keys is None else await self.keys.for_filing(call_id, name)
        await asyncio.to_thread(self._makedirs, target.parent)
        temp = await _made(lambda: _Temp(target.parent, target.name) if key is None
                           else _Sealing(target, key))
        try:
            if isinstance(chunks, AsyncIterable):
                async for chunk in chunks:
                    await asyncio.to_thread(temp.write, chunk)
            else:
                await asyncio.to_thread(_write_all, temp, chunks)
            if isinstance(temp, _Temp):
                await asyncio.to_thread(temp.finish)
                return await asyncio.to_thread(self._place, temp, target)
            content = await asyncio.to_thread(temp.finish, target)
            filed = await asyncio.to_thread(self._place, temp.sealed, target, content, key)
            return await self._placed(call_id, name, filed)
        finally:
            await asyncio.to_thread(temp.discard)

    # -- blocking parts, run in a worker thread ---------------------------------------------

    def _makedirs(self, directory: Path) -> None:
        missing: list[Path] = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another filer made it meanwhile
                d.mkdir(mode=DIR_MODE)
                os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
                fsync_dir(d.parent)  # the new directory's name must be durable too
        if not directory.is_dir():
            raise ArchiveError(f"archive directory {directory} is not a directory")

    def _file_sync(
        self, src: Path, target: Path, delete_source: bool, key: DataKey | None = None
    ) -> FiledRecording:
        # O_NOFOLLOW: a symlink planted in the spool must not pull another file into the archive.
        # O_NONBLOCK: opening a FIFO must not hang the filer (no effect on regular files).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(src, flags)
        except OSError as e:
            raise ArchiveError(f"cannot open spool file {src}: {e.strerror or e}") from e
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ArchiveError(f"not a regular file: {src}")
        with os.fdopen(fd, "rb") as f:
            try:
                self._makedirs(target.parent)
                temp = _Temp(target.parent, target.name)
            except OSError as e:
                _raise_if_full(e, src)
                raise
            try:
                if key is None:
                    while chunk := f.read(_CHUNK):
                        temp.write(chunk)
                    temp.finish()
                    filed = self._place(temp, target)
                else:
                    sha, size = _seal(key, f, temp)
                    filed = self._place(temp, target, _content(src, sha, size, target), key)
            except OSError as e:
                temp.discard()
                _raise_if_full(e, src)
                raise
            except BaseException:
                temp.discard()
                raise
        if delete_source:
            try:
                src.unlink()
            except OSError as e:
                raise ArchiveError(
                    f"filed {filed.path} but could not delete spool copy {src}: {e.strerror}",
                    filed,
                ) from e
        return filed

    def _place(
        self, temp: _Temp, target: Path, content: _Content | None = None,
        key: DataKey | None = None,
    ) -> FiledRecording:  # fmt: skip
        """Give the fsynced temp file its final name without ever replacing a file. `content`
        and `key`: the temp file is `content` encrypted under `key`."""
        c = content or _content(temp.path, temp.hash.hexdigest(), temp.size, target)
        sha = c.sha256
        conflict: Path | None = None
        candidates = [target, target.with_name(f"{target.stem}.{sha[:12]}{target.suffix}")]

        def filed(dest: Path, already: bool) -> FiledRecording:
            stored: tuple[str | None, int | None] = (None, None)
            if key is not None:
                stored = file_digest(dest) if already else (temp.hash.hexdigest(), temp.size)
            return FiledRecording(dest, sha, c.size, c.duration_ms, c.audio_error, already,
                                  conflict, *stored)  # fmt: skip

        def same(dest: Path) -> bool:
            return _hash_file(dest) == sha if key is None else _same_plaintext(dest, sha, key)

        for dest in candidates:
            try:
                os.link(temp.path, dest)
            except FileExistsError:
                if same(dest):
                    temp.discard()
                    return filed(dest, True)
                conflict = conflict or dest
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                # No hard links on this filesystem: check-then-rename, racy only between
                # two filers of the same name, which the caller serialises anyway.
                if dest.exists():
                    if same(dest):
                        temp.discard()
                        return filed(dest, True)
                    conflict = conflict or dest
                    continue
                os.rename(temp.path, dest)
            temp.discard()
            fsync_dir(dest.parent)
            return filed(dest, False)
        raise ArchiveError(f"{target} and {candidates[1].name} both hold other content")
