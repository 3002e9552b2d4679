"""Archive.file / file_bytes on a real filesystem: layout, modes, hashes, idempotency, safety."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from recorder.storage.archive import Archive, ArchiveError

WavWriter = Callable[..., Path]  # the make_wav fixture (conftest.py)
CALL = "20261125T191425-3fa9c2d1"
STARTED = datetime(2026, 11, 25, 19, 14, 25, tzinfo=UTC)


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("mask", [0o000, 0o077])
async def test_file_layout_modes_hash_and_source_deleted(
    archive: Archive, make_wav: WavWriter, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)  # modes are explicit, whatever the daemon's umask
    src = make_wav(f"spool/{CALL}-s1.wav", 2.0)
    data = src.read_bytes()
    filed = await archive.file(src, call_id=CALL, name=f"{CALL}-s1", started_at=STARTED, fmt="wav")
    expected = archive.root / "2026" / "11" / "25" / CALL / f"{CALL}-s1.wav"
    assert filed.path == expected
    assert filed.sha256 == hashlib.sha256(data).hexdigest()
    assert (filed.bytes, filed.duration_ms, filed.audio_error) == (len(data), 2000, None)
    assert not filed.already_filed and filed.conflict_with is None
    assert expected.read_bytes() == data
    assert not src.exists()
    assert _mode(expected) == 0o640
    for d in (archive.root / "2026", expected.parent.parent, expected.parent):
        assert _mode(d) == 0o750, d
    assert _all_files(archive.root) == [expected]  # no temp file left behind


async def test_date_is_utc(archive: Archive, make_wav: WavWriter) -> None:
    # 00:30 on the 26th in Berlin is 23:30 on the 25th in UTC.
    berlin = datetime(2026, 11, 26, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    filed = await archive.file(
        make_wav("a.wav"), call_id=CALL, name="n", started_at=berlin, fmt="wav"
    )
    assert filed.path.relative_to(archive.root).parts[:3] == ("2026", "11", "25")
    with pytest.raises(ArchiveError, match="naive"):
        archive.target(call_id=CALL, name="n", started_at=datetime(2026, 1, 1), fmt="wav")


async def test_refiling_same_content_is_idempotent(archive: Archive, make_wav: WavWriter) -> None:
    kw = dict(call_id=CALL, name="rec", started_at=STARTED, fmt="wav")
    first = await archive.file(make_wav("a.wav", 1.0), **kw)  # type: ignore[arg-type]
    again_src = make_wav("b.wav", 1.0)  # same content, as after a crash between copy and delete
    again = await archive.file(again_src, **kw)  # type: ignore[arg-type]
    assert again.already_filed and again.path == first.path and again.sha256 == first.sha256
    assert not again_src.exists()
    assert _all_files(archive.root) == [first.path]


async def test_different_content_never_overwrites(archive: Archive, make_wav: WavWriter) -> None:
    kw = dict(call_id=CALL, name="rec", started_at=STARTED, fmt="wav")
    first = await archive.file(make_wav("a.wav", 1.0), **kw)  # type: ignore[arg-type]
    original = first.path.read_bytes()
    other = await archive.file(make_wav("b.wav", 2.0), **kw)  # type: ignore[arg-type]
    assert other.conflict_with == first.path
    assert other.path == first.path.with_name(f"rec.{other.sha256[:12]}.wav")
    assert first.path.read_bytes() == original and other.duration_ms == 2000
    # The same conflicting content once more: found under its suffixed name.
    third = await archive.file(make_wav("c.wav", 2.0), **kw)  # type: ignore[arg-type]
    assert third.already_filed and third.path == other.path
    assert _all_files(archive.root) == sorted([first.path, other.path])


async def test_keep_source_and_undecodable_audio(archive: Archive, tmp_path: Path) -> None:
    src = tmp_path / "garbage.wav"
    src.write_bytes(b"RIFF????WAVEjunk" * 100)
    filed = await archive.file(
        src, call_id=CALL, name="g", started_at=STARTED, fmt="wav", delete_source=False
    )
    assert src.exists() and filed.path.read_bytes() == src.read_bytes()
    assert filed.duration_ms is None
    assert filed.audio_error is not None and str(filed.path) in filed.audio_error
    assert ".tmp" not in filed.audio_error


@pytest.mark.parametrize(
    "call_id,name,fmt",
    [
        ("../etc", "n", "wav"), ("..", "n", "wav"), ("a/b", "n", "wav"), (".hidden", "n", "wav"),
        ("", "n", "wav"), (CALL, "../../../../tmp/x", "wav"), (CALL, "x/y", "wav"),
        (CALL, "a..b", "wav"), (CALL, "nul\0", "wav"), (CALL, "n", "wav/../x"), (CALL, "n", ""),
        (CALL, "n\n", "wav"), (CALL, "x" * 200, "wav"), ("/abs", "n", "wav"),
    ],
)  # fmt: skip
async def test_unsafe_names_refused(
    archive: Archive, make_wav: WavWriter, call_id: str, name: str, fmt: str
) -> None:
    src = make_wav("a.wav")
    with pytest.raises(ArchiveError, match="unsafe"):
        await archive.file(src, call_id=call_id, name=name, started_at=STARTED, fmt=fmt)
    with pytest.raises(ArchiveError, match="unsafe"):
        await archive.file_bytes([b"x"], call_id=call_id, name=name, started_at=STARTED, fmt=fmt)
    assert src.exists() and not archive.root.exists()


async def test_symlinks_and_directories_are_not_filed(archive: Archive, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the archive")
    link = tmp_path / f"{CALL}-s1.wav"
    link.symlink_to(secret)
    with pytest.raises(ArchiveError, match="cannot open spool file"):
        await archive.file(link, call_id=CALL, name="n", started_at=STARTED, fmt="wav")
    with pytest.raises(ArchiveError, match="not a regular file"):
        await archive.file(tmp_path, call_id=CALL, name="n", started_at=STARTED, fmt="wav")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it must not hang the filer
    with pytest.raises(ArchiveError, match="not a regular file"):
        await archive.file(fifo, call_id=CALL, name="n", started_at=STARTED, fmt="wav")
    assert link.is_symlink() and secret.exists()
    assert not archive.root.exists() or _all_files(archive.root) == []


async def test_file_bytes_from_async_stream(archive: Archive, make_wav: WavWriter) -> None:
    data = make_wav("a.wav", 1.5).read_bytes()

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    filed = await archive.file_bytes(
        stream(), call_id=CALL, name="s", started_at=STARTED, fmt="wav"
    )
    assert filed.path.read_bytes() == data and filed.duration_ms == 1500
    assert _mode(filed.path) == 0o640
    again = await archive.file_bytes([data], call_id=CALL, name="s", started_at=STARTED, fmt="wav")
    assert again.already_filed and _all_files(archive.root) == [filed.path]


async def test_file_bytes_failure_leaves_nothing(archive: Archive) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"RIFF"
        raise ConnectionResetError("ARI went away")

    with pytest.raises(ConnectionResetError):
        await archive.file_bytes(broken(), call_id=CALL, name="s", started_at=STARTED, fmt="wav")
    assert _all_files(archive.root) == []


async def test_concurrent_filing_of_one_recording(archive: Archive, make_wav: WavWriter) -> None:
    data = make_wav("a.wav", 1.0).read_bytes()
    results = await asyncio.gather(
        *(
            archive.file_bytes([data], call_id=CALL, name="c", started_at=STARTED, fmt="wav")
            for _ in range(4)
        )
    )
    assert sum(not r.already_filed for r in results) == 1
    assert {r.path for r in results} == {results[0].path}
    assert _all_files(archive.root) == [results[0].path]
