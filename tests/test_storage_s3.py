"""storage.backend s3 against a real SeaweedFS (tests/seaweedfs.py, one per session): the store,
the move of filed recordings into the bucket (hash confirmed, local copy removed, waiting while
the store is down) and playback from the bucket through the API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from recorder.api.server import build_deps, make_app
from recorder.api.users import UserStore
from recorder.cli import keeping as keeping_cli
from recorder.config import StorageConfig
from recorder.db.repository import Repository
from recorder.keeping.purge import Purger
from recorder.keeping.verify import verify
from recorder.policy.model import Length
from recorder.storage.objects import Multipart, S3Store, StoreError, checksum
from recorder.storage.store import LocalStore
from recorder.storage.tiered import TieredStore
from recorder.storage.upload import Uploader, uploading
from tests.harness.api_world import add_users, config_for
from tests.harness.keeping_world import T0, policy, seed_call
from tests.harness.seaweedfs import SeaweedFS


def office() -> str:
    return f"pbx-{uuid.uuid4().hex[:8]}"  # the bucket is shared by the session's tests


async def listing(store: S3Store, since: str | None = None) -> list[str]:
    found = store.keys(since)
    return [k async for k in found]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_the_store_keys_offices_apart_and_checks_hashes(
    bucket: S3Store, tmp_path: Path
) -> None:
    mine, theirs = office(), office()
    store = S3Store(bucket.client, bucket.bucket, mine)
    other = S3Store(bucket.client, bucket.bucket, theirs)
    files = {}
    for rel in ("2026/03/02/c2/b.wav", "2026/03/01/c1/a.wav", "2026/03/02/c2/a.wav"):
        path = tmp_path / rel.replace("/", "_")
        path.write_bytes(rel.encode() * 100)
        files[store.key_for(rel)] = path
        await store.put(store.key_for(rel), path, sha(path.read_bytes()))
    same = tmp_path / "same"
    same.write_bytes(b"other office")
    await other.put(other.key_for("2026/03/01/c1/a.wav"), same, sha(b"other office"))

    keys = await listing(store)
    assert keys == sorted(files) and all(k.startswith(f"s3://recordings/{mine}/") for k in keys)
    since = await listing(store, store.day_key(datetime(2026, 3, 2, tzinfo=UTC)))
    assert since == sorted(files)[1:]
    assert await listing(other) == [other.key_for("2026/03/01/c1/a.wav")]

    key, path = sorted(files.items())[0]
    data = path.read_bytes()
    assert await store.digest(key) == await LocalStore(tmp_path).digest(str(path))
    assert b"".join([c async for c in store.read(key)]) == data
    assert await store.confirm(key, sha(data), len(data))
    assert not await store.confirm(key, sha(b"tampered"), len(data))
    assert not await store.confirm(store.key_for("2026/01/01/x/none.wav"), sha(data), 1)
    # Bytes that are not what was filed are refused by the store itself.
    with pytest.raises(StoreError):
        await store.put(store.key_for("2026/03/03/c3/x.wav"), path, sha(b"something else"))
    assert await store.digest(store.key_for("2026/03/03/c3/x.wav")) is None
    with pytest.raises(FileNotFoundError):
        await store.get(store.key_for("2026/03/03/c3/x.wav"))

    assert await store.delete_many([key, store.key_for("2026/01/01/x/none.wav")]) == [True, False]
    assert await listing(store) == sorted(files)[1:]
    assert not store.owns(other.key_for("2026/03/01/c1/a.wav"))
    assert bucket.owns(other.key_for("2026/03/01/c1/a.wav"))


@dataclasses.dataclass
class Office:
    asterisk_id: str
    repo: Repository
    archive: Path
    uploader: Uploader


@pytest.fixture
async def moving(repo: Repository, bucket: S3Store, tmp_path: Path) -> Office:
    archive = tmp_path / "archive"
    archive.mkdir()
    ast = office()
    store = S3Store(bucket.client, bucket.bucket, ast)
    return Office(ast, repo, archive, Uploader(repo.pool, LocalStore(archive), store, ast))


async def rows(pool: Any, ast: str) -> list[dict[str, Any]]:
    found = await pool.fetch("SELECT name, path, sha256, bytes FROM recordings "
                             "WHERE asterisk_id = $1 ORDER BY name", ast)  # fmt: skip
    return [dict(r.items()) for r in found]


async def test_a_filed_recording_moves_to_the_bucket_and_plays_back_with_range(
    moving: Office, bucket: S3Store, pg_dsn: str, tmp_path: Path, seaweed: SeaweedFS
) -> None:
    ast, pool = moving.asterisk_id, moving.repo.pool
    files = await seed_call(moving.repo, moving.archive, "call-1", asterisk_id=ast, segments=2)
    data = [f.read_bytes() for f in files]

    assert (await moving.uploader.move_round()).moved == 2

    moved = await rows(pool, ast)
    keys = [f"s3://recordings/{ast}/{f.relative_to(moving.archive)}" for f in files]
    assert [r["path"] for r in moved] == keys
    assert not any(f.exists() for f in files)
    assert not files[0].parent.exists()  # the call's folder went with its last file
    for key, body in zip(keys, data, strict=True):
        digest = await bucket.digest(key)
        assert digest is not None and digest.sha256 == sha(body)
    uploads = await pool.fetch("SELECT local_path, key, local_removed_at FROM uploads "
                               "WHERE asterisk_id = $1 ORDER BY name", ast)  # fmt: skip
    assert [(u["local_path"], u["key"]) for u in uploads] == list(
        zip([str(f) for f in files], keys, strict=True))
    assert all(u["local_removed_at"] is not None for u in uploads)
    custody = await pool.fetch("SELECT recording_name, subject_sha256, detail FROM custody "
                               "WHERE chain = $1 AND kind = 'moved' ORDER BY seq", ast)
    assert [(c["recording_name"], c["subject_sha256"]) for c in custody] == [
        ("call-1-s1", sha(data[0])), ("call-1-s2", sha(data[1]))]
    assert (await moving.uploader.move_round()).moved == 0  # nothing twice

    # The daemon's model still knows the archive path: its next snapshot must not move it back.
    await seed_call(moving.repo, moving.archive, "call-1", asterisk_id=ast, segments=2)
    assert [r["path"] for r in await rows(pool, ast)] == keys
    for f in files:  # (seed_call wrote the files again: not the daemon's doing)
        f.unlink()

    config = dataclasses.replace(config_for(pg_dsn, moving.archive), storage=StorageConfig(
        archive_dir=moving.archive, spool_dir=None, backend="s3", s3=None))  # fmt: skip
    deps = build_deps(config, pool, bucket)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(deps)))
    await client.start_server()
    try:
        tokens = await add_users(UserStore(pool))
        auth = {"Authorization": f"Bearer {tokens['admin']}"}
        url = "/api/calls/call-1/recordings/call-1-s2/audio"
        whole = await client.get(url, headers=auth)
        assert whole.status == 200 and await whole.read() == data[1]
        assert whole.headers["Accept-Ranges"] == "bytes"
        head = await client.head(url, headers=auth)
        assert head.status == 200 and head.headers["Content-Length"] == str(len(data[1]))
        part = await client.get(url, headers={**auth, "Range": "bytes=10-99"})
        assert part.status == 206 and await part.read() == data[1][10:100]
        assert part.headers["Content-Range"] == f"bytes 10-99/{len(data[1])}"
        tail = await client.get(url, headers={**auth, "Range": "bytes=-7"})
        assert tail.status == 206 and await tail.read() == data[1][-7:]
        beyond = await client.get(url, headers={**auth, "Range": f"bytes={len(data[1])}-"})
        assert beyond.status == 416
        download = await client.get(url.replace("/audio", "/download"), headers=auth)
        assert await download.read() == data[1]
        assert download.headers["Content-Disposition"].startswith("attachment")
        # The call page's whole-call mix and waveforms are made from files: a checked copy
        # beside them, which a purge deletes with them.
        copies = await deps.calls.archive_files("call-1")
        assert [p.read_bytes() for p in copies.values()] == data
        assert all(p.parent == moving.archive / ".derived" / "call-1" for p in copies.values())
        # Gone from the bucket: a 404 saying so, not a 500.
        await bucket.delete_many([keys[0]])
        gone = await client.get(url.replace("-s2", "-s1"), headers=auth)
        assert gone.status == 404
        assert (await gone.json())["error_id"] == "recording_file_missing"
        # The store down: a 503 saying so, not a 500 (before: botocore's connection error)
        seaweed.stop()
        try:
            down = await client.get(url, headers=auth)
            assert down.status == 503
            assert (await down.json())["error_id"] == "object_store_unavailable"
        finally:
            seaweed.start()
    finally:
        await client.close()


# The acceptance: the store down for 30 s. The wait is idle (one failing round every
# half second: retry_max_s 0.5, and botocore's own second attempt, up to 2 s later, comes first in
# each round), so it costs the suite its 30 s and no CPU. 30 s are 10 or more failed rounds, each a
# real attempt against the port the stopped SeaweedFS listened on (on a busy machine the store
# stays down longer, until there were that many). Once it is back the bounded backoff moves
# everything within a few seconds.
OUTAGE_S = 30.0
FAILED_ROUNDS = 10
RECOVERY_S = 20.0


async def test_a_local_file_altered_since_filing_stays_and_holds_back_no_other(
    moving: Office, bucket: S3Store
) -> None:
    """One recording's local file no longer matches its filed SHA-256 (bit rot, tampering):
    it is left for `verify` with one error, and the recordings after it go up (before: the
    store refused it at every round, first in line, and nothing after it ever moved)."""
    ast = moving.asterisk_id
    bad, good = await seed_call(moving.repo, moving.archive, "call-1", asterisk_id=ast,
                                segments=2)  # fmt: skip
    with bad.open("r+b") as f:
        f.seek(5)
        f.write(b"X")
    with capture_logs() as logs:
        assert (await moving.uploader.move_round()).moved == 1
        assert (await moving.uploader.move_round()).moved == 0  # skipped, not tried again
    paths = {r["name"]: r["path"] for r in await rows(moving.repo.pool, ast)}
    assert paths == {"call-1-s1": str(bad),
                     "call-1-s2": f"s3://recordings/{ast}/{good.relative_to(moving.archive)}"}
    said = [(x["event"], x["log_level"], x["recording"]) for x in logs
            if x["log_level"] in ("warning", "error")]
    assert said == [("upload.impossible", "error", "call-1-s1")]
    assert bad.exists() and await bucket.digest(paths["call-1-s2"]) is not None


async def test_recordings_wait_while_the_store_is_down_and_all_arrive_once(
    moving: Office, bucket: S3Store, seaweed: SeaweedFS
) -> None:
    """SeaweedFS stopped while 20 recordings are filed, then started again on its port and data:
    all 20 arrive, with their hashes, once each."""
    ast, pool = moving.asterisk_id, moving.repo.pool
    ready = asyncio.Event()
    ready.set()
    task = asyncio.create_task(uploading(lambda _: moving.uploader, ready, lambda: ast,
                                         idle_s=0.1, retry_max_s=0.5))  # fmt: skip
    status = moving.uploader.status  # what /metrics and the health line show
    files = []
    try:
        files += await seed_call(moving.repo, moving.archive, "before", asterisk_id=ast)
        for _ in range(50):
            if not files[0].exists():
                break
            await asyncio.sleep(0.1)
        assert not files[0].exists()  # moved while the store was up
        seaweed.stop()
        down = asyncio.get_running_loop().time()
        for n in range(20):  # filed across the outage
            files += await seed_call(moving.repo, moving.archive, f"down-{n:02}",
                                     asterisk_id=ast)  # fmt: skip
            await asyncio.sleep(OUTAGE_S / 20)
        await asyncio.sleep(max(0.0, down + OUTAGE_S - asyncio.get_running_loop().time()))
        for _ in range(600):  # (a busy machine makes rounds slower: down for enough of them)
            if status.failed_rounds >= FAILED_ROUNDS:
                break
            await asyncio.sleep(0.1)
        assert status.failing and status.moved_total == 1
        assert status.failed_rounds >= FAILED_ROUNDS  # retried again and again, not given up
        assert all(f.exists() for f in files[1:])
        waiting = [r for r in await rows(pool, ast) if not r["path"].startswith("s3://")]
        assert len(waiting) == 20
        assert await pool.fetchval("SELECT count(*) FROM uploads WHERE asterisk_id = $1",
                                   ast) == 1  # fmt: skip
        seaweed.start()
        back = asyncio.get_running_loop().time()
        for _ in range(600):
            moved = all(r["path"].startswith("s3://") for r in await rows(pool, ast))
            # (a row is moved at its commit; the counts at the end of the round that did it)
            if moved and status.moved_total == 21 and not status.failing:
                break
            await asyncio.sleep(0.1)
        resumed_in = asyncio.get_running_loop().time() - back
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (status.waiting, status.failing, status.moved_total) == (0, False, 21)
    assert resumed_in < RECOVERY_S  # the backoff stayed bounded: no minute-long last wait
    store = S3Store(bucket.client, bucket.bucket, ast)
    keys = await listing(store)
    assert len(keys) == len(files) == len(set(keys))
    for r in await rows(pool, ast):
        assert r["path"] in keys
        digest = await store.digest(r["path"])
        assert digest is not None and (digest.sha256, digest.size) == (r["sha256"], r["bytes"])
    assert not any(f.exists() for f in files)
    assert await pool.fetchval("SELECT count(*) FROM custody WHERE chain = $1 AND kind = "
                               "'moved'", ast) == len(files)  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM uploads WHERE asterisk_id = $1 AND "
                               "local_removed_at IS NOT NULL", ast) == len(files)  # fmt: skip


async def test_verify_and_purge_see_the_archive_and_the_bucket_as_one(
    moving: Office, bucket: S3Store, seaweed: SeaweedFS, pg_dsn: str
) -> None:
    ast, pool = moving.asterisk_id, moving.repo.pool
    for n in range(3):
        await seed_call(moving.repo, moving.archive, f"both-{n}", asterisk_id=ast)
    moving.uploader.batch = 2
    assert (await moving.uploader.move_round()).moved == 2  # both-0, both-1; both-2 waits
    store = TieredStore(LocalStore(moving.archive), moving.uploader.store)
    assert (await verify(pool, store, ast)).ok
    # `verbatim verify` with storage.s3 configured checks the same.
    config = dataclasses.replace(config_for(pg_dsn, moving.archive), storage=StorageConfig(
        archive_dir=moving.archive, spool_dir=None, backend="s3", s3=seaweed.config()))
    command = argparse.Namespace(command="verify", office=ast, since=None, sample="100%",
                                 json=True)  # fmt: skip
    assert await keeping_cli.run(config, command) == 0

    # A changed object in the bucket and an object no recording names are found.
    moved = [r["path"] for r in await rows(pool, ast) if r["path"].startswith("s3://")]
    name = moved[0].removeprefix("s3://recordings/")
    await bucket.client.put_object(Bucket="recordings", Key=name, Body=b"tampered")
    await bucket.client.put_object(Bucket="recordings", Key=f"{ast}/2024/01/10/x/extra.wav",
                                   Body=b"extra")  # fmt: skip
    assert await keeping_cli.run(config, command) == 1
    report = await verify(pool, store, ast)
    assert sorted((p.kind, p.where) for p in report.problems) == [
        ("mismatch", moved[0]), ("orphan_file", f"s3://recordings/{ast}/2024/01/10/x/extra.wav")]

    # Past its class, each goes wherever it is: two objects and one local file; and the call
    # page's copy of a moved one.
    copy = moving.archive / ".derived" / "both-1" / "both-1-s1-0123456789abcdef.wav"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"copy")
    done = await Purger(pool, store, policy(standard=Length(days=1)), ast).run(
        T0 + timedelta(days=30))  # fmt: skip
    assert done.audio == 3 and done.missing_files == 0
    assert await rows(pool, ast) == []
    assert await listing(moving.uploader.store) == [
        f"s3://recordings/{ast}/2024/01/10/x/extra.wav"]
    assert not any(p.is_file() for p in moving.archive.rglob("*"))  # .derived/ copies too


async def test_a_move_cut_short_anywhere_finishes_once(moving: Office) -> None:
    """As a kill -9 would leave it: uploaded but not committed; committed but the local copy
    still there. The next round finishes each, with one object and one custody event each."""
    ast, pool = moving.asterisk_id, moving.repo.pool
    first = (await seed_call(moving.repo, moving.archive, "cut-1", asterisk_id=ast))[0]
    second = (await seed_call(moving.repo, moving.archive, "cut-2", asterisk_id=ast))[0]
    # cut-1: the object is in the bucket, the database never heard of it.
    key = moving.uploader.store.key_for(str(first.relative_to(moving.archive)))
    await moving.uploader.store.put(key, first, sha(first.read_bytes()))
    # cut-2: moved and committed, then the daemon died before removing the local file.
    moving.uploader.batch = 1
    kept = second.read_bytes()
    assert (await moving.uploader.move_round()).moved == 1  # cut-1 (names in order)
    assert (await moving.uploader.move_round()).moved == 1
    second.parent.mkdir(parents=True, exist_ok=True)
    second.write_bytes(kept)
    await pool.execute("UPDATE uploads SET local_removed_at = NULL WHERE name = 'cut-2-s1'")

    assert (await moving.uploader.move_round()).moved == 0
    assert not first.exists() and not second.exists()
    assert len(await listing(moving.uploader.store)) == 2
    assert await pool.fetchval("SELECT count(*) FROM uploads WHERE asterisk_id = $1 AND "
                               "local_removed_at IS NOT NULL", ast) == 2  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM custody WHERE chain = $1 AND kind = "
                               "'moved'", ast) == 2  # fmt: skip


async def test_a_long_recording_goes_up_in_parts_and_a_dead_runs_parts_are_aborted(
    moving: Office, bucket: S3Store
) -> None:
    ast, pool = moving.asterisk_id, moving.repo.pool
    mb = 1 << 20
    store = S3Store(bucket.client, bucket.bucket, ast, Multipart(threshold=6 * mb, part=5 * mb))
    moving.uploader.store = store
    (small,) = await seed_call(moving.repo, moving.archive, "short", asterisk_id=ast)
    (long,) = await seed_call(moving.repo, moving.archive, "long", asterisk_id=ast)
    data = os.urandom(12 * mb + 123)  # three parts: 5 MB, 5 MB and the rest
    long.write_bytes(data)
    await pool.execute("UPDATE recordings SET sha256 = $1, bytes = $2 WHERE name = 'long-s1'",
                       sha(data), len(data))  # fmt: skip
    # A run that died mid-upload left a multipart upload with one part in the store.
    dead = store.key_for("2024/01/10/dead/dead-s1.wav")
    name = dead.removeprefix("s3://recordings/")
    started = await bucket.client.create_multipart_upload(Bucket="recordings", Key=name)
    await bucket.client.upload_part(Bucket="recordings", Key=name, PartNumber=1,
                                    UploadId=started["UploadId"], Body=data[:5 * mb])
    left = await bucket.client.list_multipart_uploads(Bucket="recordings", Prefix=f"{ast}/")
    assert [u["Key"] for u in left.get("Uploads", ())] == [name]

    assert (await moving.uploader.move_round()).moved == 2
    left = await bucket.client.list_multipart_uploads(Bucket="recordings", Prefix=f"{ast}/")
    assert left.get("Uploads", []) == []
    key = store.key_for(str(long.relative_to(moving.archive)))
    head = await bucket.client.head_object(Bucket="recordings", Key=key.removeprefix(
        "s3://recordings/"), ChecksumMode="ENABLED")  # fmt: skip
    assert head["ContentLength"] == len(data) and head["ChecksumSHA256"].endswith("-3")
    assert b"".join([c async for c in store.read(key)]) == data
    assert await listing(store) == sorted([key, store.key_for(
        str(small.relative_to(moving.archive)))])  # fmt: skip
    assert not long.exists() and not small.exists()
    assert [r["path"] for r in await rows(pool, ast)] == sorted(await listing(store))
    # A part whose bytes are not what was sent is refused by its checksum.
    started = await bucket.client.create_multipart_upload(Bucket="recordings", Key=name,
                                                          ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError):
        await bucket.client.upload_part(Bucket="recordings", Key=name, PartNumber=1,
                                        UploadId=started["UploadId"], Body=b"x" * 100,
                                        ChecksumSHA256=checksum(sha(b"y" * 100)))
    assert await store.abort_unfinished() == [dead]
