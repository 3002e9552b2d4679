"""storage.compact: an Opus or MP3 copy of each filed recording made by the real ffmpeg, both
hashes kept; with the original kept, and dropped (the copy is then the recording: played,
verified and purged)."""

from __future__ import annotations

import hashlib
import math
import struct
import subprocess
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from recorder.api.server import build_deps, make_app
from recorder.api.users import UserStore
from recorder.config.model import CompactConfig
from recorder.db.repository import Repository
from recorder.db.rows import RecordingRow
from recorder.keeping import custody
from recorder.keeping.purge import Purger
from recorder.keeping.verify import verify
from recorder.policy.model import Length
from recorder.storage.compact import Compactor, encode, ffmpeg_args
from recorder.storage.store import LocalStore
from tests.harness.api_world import add_users, config_for
from tests.harness.keeping_world import AST, T0, policy, seed_call


def tone_wav(path: Path, seconds: float = 2.0, hz: float = 440.0) -> bytes:
    """A real 8 kHz mono WAV (what Asterisk records), so ffmpeg has audio to encode."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / 8000)))
                               for i in range(int(8000 * seconds))))  # fmt: skip
    return path.read_bytes()


async def filed_tone(repo: Repository, archive: Path, call_id: str) -> tuple[Path, str]:
    """A call as seed_call files it, its recording (<call_id>-s2) a real tone."""
    (stub,) = await seed_call(repo, archive, call_id)  # the call and its stub recording -s1
    async with repo.pool.acquire() as conn, conn.transaction():
        rec = await conn.fetchrow("DELETE FROM recordings WHERE name = $1 RETURNING *",
                                  f"{call_id}-s1")  # fmt: skip
        assert rec is not None
        # gone as a purge takes a recording, or verify finds it missing
        await custody.append(conn, rec["asterisk_id"], "purged", call_id=call_id,
                             asterisk_id=rec["asterisk_id"], recording_name=rec["name"],
                             subject_sha256=rec["sha256"])  # fmt: skip
    stub.unlink()
    path = stub.with_name(f"{call_id}-s2.wav")
    data = tone_wav(path)
    sha = hashlib.sha256(data).hexdigest()
    fields = {k: rec[k] for k in RecordingRow.__dataclass_fields__}
    call = await repo.call(call_id)
    assert call is not None
    await repo.save_call(call, [], [RecordingRow(**fields | {
        "name": f"{call_id}-s2", "segment": 2, "path": str(path), "sha256": sha,
        "bytes": len(data)})])  # fmt: skip
    return path, sha


def duration_s(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout)


async def row(pool: Any, name: str) -> dict[str, Any]:
    found = await pool.fetchrow("SELECT * FROM recordings WHERE name = $1", name)
    assert found is not None
    return dict(found.items())


@pytest.mark.parametrize(("fmt", "raw", "expected"), [
    ("opus", "wav", ["-c:a", "libopus", "-b:a", "24k", "-f", "ogg", "out"]),
    ("mp3", "wav", ["-c:a", "libmp3lame", "-b:a", "24k", "-f", "mp3", "out"]),
    ("opus", "ulaw", ["-f", "mulaw", "-ar", "8000", "-ac", "1", "-i", "in.wav"]),
    ("opus", "sln16", ["-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "in.wav"]),
])  # fmt: skip
def test_the_ffmpeg_command_reads_asterisks_formats_and_encodes_as_configured(
    fmt: str, raw: str, expected: list[str]
) -> None:
    args = ffmpeg_args(Path("in.wav"), raw, Path("out"), CompactConfig(fmt, 24))
    assert any(args[i:i + len(expected)] == expected for i in range(len(args)))
    assert args[:2] == ["ffmpeg", "-nostdin"] and args[-1] == "out"
    if raw == "wav":
        assert "-f" not in args[: args.index("-i")]  # a WAV says what it is


async def test_the_copys_name_is_made_durable_before_it_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy's folder is fsynced after the copy takes its name: the row that names it is
    committed next, and a power cut must not leave the row naming a copy that never was."""
    import os
    import stat

    source = tmp_path / "in.wav"
    tone_wav(source)
    target = tmp_path / "out" / "call-s1.opus"
    target.parent.mkdir()
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append("folder" if stat.S_ISDIR(info.st_mode) else
                      "copy" if target.exists() and os.path.samestat(info, target.stat())
                      else "temporary")  # fmt: skip
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    await encode(source, "wav", target, CompactConfig())
    assert synced == ["temporary", "folder"]
    assert target.is_file() and not [p for p in target.parent.iterdir() if p != target]


async def test_a_kept_original_gets_a_verified_compact_copy_purged_with_it(
    repo: Repository, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    original, sha = await filed_tone(repo, archive, "keep-1")
    compactor = Compactor(repo.pool, LocalStore(archive), CompactConfig("opus", 24), AST)
    assert await compactor.round() == 1
    assert await compactor.round() == 0  # nothing twice

    r = await row(repo.pool, "keep-1-s2")
    copy = original.with_suffix(".opus")
    assert (r["path"], r["sha256"], r["format"]) == (str(original), sha, "wav")  # unchanged
    assert (r["compact_path"], r["compact_format"]) == (str(copy), "opus")
    data = copy.read_bytes()
    assert data[:4] == b"OggS" and b"OpusHead" in data[:64]
    assert r["compact_sha256"] == hashlib.sha256(data).hexdigest()
    assert r["compact_bytes"] == len(data) < original.stat().st_size
    assert abs(duration_s(copy) - 2.0) < 0.1
    assert copy.stat().st_mode & 0o777 == 0o640
    assert r["original_sha256"] is None and original.exists()
    event = await repo.pool.fetchrow("SELECT subject_sha256, detail FROM custody WHERE "
                                     "kind = 'compacted' AND recording_name = 'keep-1-s2'")
    assert event is not None and event["subject_sha256"] == r["compact_sha256"]

    store = LocalStore(archive)
    report = await verify(repo.pool, store, AST)
    assert report.ok and report.files == 2, report.problems  # both files, no orphan
    # A changed byte in the copy is found, at the copy.
    copy.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    report = await verify(repo.pool, store, AST)
    assert [(p.kind, p.where) for p in report.problems] == [("mismatch", str(copy))]

    done = await Purger(repo.pool, store, policy(standard=Length(days=1)), AST).run(
        T0 + timedelta(days=30))  # fmt: skip
    assert done.audio == 1
    assert not original.exists() and not copy.exists()


async def test_a_copy_left_by_a_crash_before_its_commit_is_found_by_verify(
    repo: Repository, tmp_path: Path
) -> None:
    """ffmpeg wrote the copy, then the daemon died before the commit; the recording was purged
    before a compactor came back to it. No row names the copy: verify reports it as an orphan
    (and the purge left the original's row and file gone, nothing else)."""
    archive = tmp_path / "archive"
    original, _ = await filed_tone(repo, archive, "crash-1")
    copy = original.with_suffix(".opus")
    await encode(original, "wav", copy, CompactConfig("opus", 24))  # what _compact does first
    store = LocalStore(archive)
    report = await verify(repo.pool, store, AST)
    assert [(p.kind, p.where) for p in report.problems] == [("orphan_file", str(copy))]
    done = await Purger(repo.pool, store, policy(standard=Length(days=1)), AST).run(
        T0 + timedelta(days=30))  # fmt: skip
    assert done.audio == 1 and not original.exists() and copy.exists()
    report = await verify(repo.pool, store, AST)
    assert [(p.kind, p.where) for p in report.problems] == [("orphan_file", str(copy))]


async def test_a_dropped_original_leaves_the_copy_as_the_recording(
    repo: Repository, tmp_path: Path, pg_dsn: str
) -> None:
    archive = tmp_path / "archive"
    original, sha = await filed_tone(repo, archive, "drop-1")
    kept = original.read_bytes()
    compactor = Compactor(repo.pool, LocalStore(archive),
                          CompactConfig("mp3", 32, keep_original=False), AST)  # fmt: skip
    assert await compactor.round() == 1

    r = await row(repo.pool, "drop-1-s2")
    copy = original.with_suffix(".mp3")
    data = copy.read_bytes()
    assert (r["path"], r["format"], r["sha256"], r["bytes"]) == (
        str(copy), "mp3", hashlib.sha256(data).hexdigest(), len(data))
    assert (r["original_sha256"], r["original_format"], r["original_path"]) == (sha, "wav", None)
    assert not original.exists()
    assert (await verify(repo.pool, LocalStore(archive), AST)).ok

    # The daemon's next snapshot of the call (its model knows the original) changes nothing.
    await repo.pool.execute("UPDATE recordings SET path = $1, sha256 = $2, bytes = $3, "
                            "format = 'wav' WHERE name = 'drop-1-s2'",
                            str(original), sha, len(kept))  # fmt: skip
    assert {k: v for k, v in (await row(repo.pool, "drop-1-s2")).items() if k != "updated_at"} \
        == {k: v for k, v in r.items() if k != "updated_at"}  # fmt: skip

    # The original's kept hash is checked against what was filed.
    await repo.pool.execute("UPDATE recordings SET original_sha256 = $1 WHERE name = "
                            "'drop-1-s2'", "0" * 64)  # fmt: skip
    report = await verify(repo.pool, LocalStore(archive), AST)
    assert [(p.kind, p.where) for p in report.problems] == [("mismatch", str(copy))]
    await repo.pool.execute("UPDATE recordings SET original_sha256 = $1 WHERE name = "
                            "'drop-1-s2'", sha)  # fmt: skip

    # A crash after the commit, before the original was deleted: the next round deletes it.
    original.write_bytes(kept)
    await repo.pool.execute("UPDATE recordings SET original_path = $1 WHERE name = "
                            "'drop-1-s2'", str(original))  # fmt: skip
    assert (await verify(repo.pool, LocalStore(archive), AST)).ok  # named, not an orphan
    assert await compactor.round() == 0
    assert not original.exists() and (await row(repo.pool, "drop-1-s2"))["original_path"] is None

    # Playback serves the copy, as MP3.
    deps = build_deps(config_for(pg_dsn, archive), repo.pool)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(deps)))
    await client.start_server()
    try:
        tokens = await add_users(UserStore(repo.pool))
        got = await client.get("/api/calls/drop-1/recordings/drop-1-s2/audio",
                               headers={"Authorization": f"Bearer {tokens['admin']}"})
        assert got.status == 200 and await got.read() == data
        assert got.headers["Content-Type"] == "audio/mpeg"
    finally:
        await client.close()


async def test_undecodable_audio_is_left_as_filed(repo: Repository, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (path,) = await seed_call(repo, archive, "noise-1")  # "RIFF noise-1 ...": not audio
    compactor = Compactor(repo.pool, LocalStore(archive),
                          CompactConfig("opus", 24, keep_original=False), AST)  # fmt: skip
    assert await compactor.round() == 0
    r = await row(repo.pool, "noise-1-s1")
    assert r["compact_sha256"] is None and r["path"] == str(path) and path.exists()
    assert not list(path.parent.glob(".tmp-*")) and not path.with_suffix(".opus").exists()
    assert await compactor.round() == 0  # not tried again and again
