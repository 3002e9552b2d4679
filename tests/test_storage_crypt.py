"""Encryption at rest (storage.encryption, issue 16 item 4): a recording filed encrypted plays
back byte-identical through the API, with Range, before and after a key rotation; the file on
disk is not the plaintext; a wrong master key is a clear error; verify finds a flipped byte."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import io
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from recorder.api.server import build_deps, create_pool, make_app
from recorder.api.users import UserStore
from recorder.cli import keeping as keeping_cli
from recorder.config import (
    Config,
    ConfigError,
    EncryptionConfig,
    MasterKeySource,
    StorageConfig,
    load_config,
)
from recorder.db.repository import Repository
from recorder.db.rows import CallRow, RecordingRow
from recorder.keeping.purge import Purger
from recorder.keeping.verify import verify
from recorder.policy.model import Length
from recorder.service.app import build
from recorder.storage import archive as archive_module
from recorder.storage.archive import Archive
from recorder.storage.audio import probe
from recorder.storage.crypt import (
    CryptError,
    DataKey,
    WrappedKey,
    keyring_for,
    load_master,
    new_master_key,
)
from recorder.storage.keys import RecordingKeys, rotate
from recorder.storage.objects import S3Store
from recorder.storage.store import LocalStore
from recorder.storage.tiered import TieredStore
from recorder.storage.upload import Uploader
from tests.harness.api_world import add_users, config_for
from tests.harness.callpage_calls import PLACERS, TARGET_HZ
from tests.harness.calls import bridged_call
from tests.harness.keeping_world import policy
from tests.harness.stack import running_stack
from tests.harness.wav import write_wav

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CALL = "20260302T090000-cryptcall"
NAME = f"{CALL}-s1"


def _key_file(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text(new_master_key() + "\n")
    path.chmod(0o400)
    return path


def _encrypted(config: Config, current: MasterKeySource,
               *previous: MasterKeySource) -> Config:  # fmt: skip
    storage = dataclasses.replace(config.storage,
                                  encryption=EncryptionConfig(current, previous))  # fmt: skip
    return dataclasses.replace(config, storage=storage)


async def _file_call(config: Config, pool: Any, spool: Path,
                     ast: str) -> tuple[bytes, Path]:  # fmt: skip
    """One ended call whose recording (70 s of WAV: more than one 1 MiB segment) is filed
    through the archive as the daemon files it, then its row written."""
    keyring = keyring_for(config.storage.encryption)
    assert keyring is not None
    archive = Archive(config.storage.archive_dir, RecordingKeys(pool, keyring))
    src = write_wav(spool / f"{NAME}.wav", 70.0)
    plain = src.read_bytes()
    filed = await archive.file(src, call_id=CALL, name=NAME, started_at=T0, fmt="wav")
    assert not src.exists()
    assert filed.sha256 == hashlib.sha256(plain).hexdigest() and filed.bytes == len(plain)
    assert filed.duration_ms == 70_000  # measured from the plaintext
    repo = Repository(pool)
    end = T0 + timedelta(seconds=70)
    await repo.save_call(CallRow(
        call_id=CALL, asterisk_id=ast, direction="inbound", caller_number="201",
        caller_e164=None, callee_number="202", callee_e164=None, extension="202",
        department=None, started_at=T0, answered_at=T0, ended_at=end, outcome="answered",
        status="ended", recorded=True, retention_class="standard"), [], [RecordingRow(
        asterisk_id=ast, name=NAME, call_id=CALL, segment=1, target="bridge:b1", format="wav",
        status="filed", requested_at=T0, started_at=T0, ended_at=end, path=str(filed.path),
        duration_ms=filed.duration_ms, bytes=filed.bytes, sha256=filed.sha256)])  # fmt: skip
    return plain, filed.path


async def _plays_back(config: Config, pool: Any, plain: bytes, auth: dict[str, str],
                      objects: S3Store | None = None) -> None:  # fmt: skip
    """Whole, HEAD, and Ranges (first byte, middle, suffix, open-ended, across the first
    1 MiB ciphertext segment's end, past the end) are the plaintext's bytes exactly."""
    deps = build_deps(config, pool, objects)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(deps)))
    await client.start_server()
    try:
        url = f"/api/calls/{CALL}/recordings/{NAME}/audio"
        whole = await client.get(url, headers=auth)
        assert whole.status == 200 and await whole.read() == plain
        assert whole.headers["Accept-Ranges"] == "bytes"
        head = await client.head(url, headers=auth)
        assert head.status == 200 and head.headers["Content-Length"] == str(len(plain))
        # Where the first 1 MiB ciphertext segment ends in the plaintext: less its header (40
        # bytes: a length byte, the 32-byte salt, the 7-byte nonce prefix) and GCM tag (16).
        size, seam = len(plain), (1 << 20) - 40 - 16
        for asked, start, stop in (("0-0", 0, 1), ("10-99", 10, 100), ("-7", size - 7, size),
                                   (f"{size - 100}-", size - 100, size),
                                   (f"{seam - 500}-{seam + 500}", seam - 500, seam + 501),
                                   (f"{seam - 10}-{seam - 1}", seam - 10, seam),
                                   (f"{seam}-{size + 999}", seam, size),
                                   ("-99999999", 0, size)):  # fmt: skip
            part = await client.get(url, headers={**auth, "Range": f"bytes={asked}"})
            assert part.status == 206, asked
            assert await part.read() == plain[start:stop], asked
            assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
        beyond = await client.get(url, headers={**auth, "Range": f"bytes={size}-"})
        assert beyond.status == 416
        download = await client.get(url.replace("/audio", "/download"), headers=auth)
        assert await download.read() == plain
        # The call page's mix is made from a decrypted copy, kept out of the archive.
        copies = await deps.calls.archive_files(CALL)
        assert [p.read_bytes() for p in copies.values()] == [plain]
        assert not copies[NAME].is_relative_to(config.storage.archive_dir)
        # A call's copies unused for a while go (none outlives a purge for long).
        stale = deps.calls.derived_root / ".derived" / "other-call"
        stale.mkdir()
        (stale / "x.wav").write_bytes(b"plain")
        os.utime(stale, (1, 1))
        assert await deps.calls.archive_files(CALL) == copies and not stale.exists()
        plays = await pool.fetchval("SELECT count(*) FROM access_log WHERE action = 'play'")
        assert plays >= 1  # audited as for any recording
    finally:
        await client.close()


@dataclasses.dataclass
class Filed:
    """One encrypted recording filed under master key k1, its call's rows written."""

    config: Config
    pool: Any
    archive: Path
    ast: str
    k1: MasterKeySource
    plain: bytes
    path: Path
    tmp: Path

    def key(self, key_id: str, name: str) -> MasterKeySource:
        return MasterKeySource(key_id, _key_file(self.tmp, name))


@pytest.fixture
async def filed(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Filed]:
    spool, archive = tmp_path / "spool", tmp_path / "archive"
    spool.mkdir()
    archive.mkdir()
    k1 = MasterKeySource("k1", _key_file(tmp_path, "k1.key"))
    config = _encrypted(config_for(pg_dsn, archive), k1)
    ast = f"pbx-{uuid.uuid4().hex[:8]}"  # the session's bucket is shared
    pool = await create_pool(pg_dsn, 1, 4)
    try:
        plain, path = await _file_call(config, pool, spool, ast)
        yield Filed(config, pool, archive, ast, k1, plain, path, tmp_path)
    finally:
        await pool.close()


async def test_encrypted_recording_plays_back_exactly_before_and_after_rotation(
    filed: Filed, capsys: pytest.CaptureFixture[str]
) -> None:
    config, pool, plain, path, k1 = filed.config, filed.pool, filed.plain, filed.path, filed.k1
    tokens = await add_users(UserStore(pool))
    auth = {"Authorization": f"Bearer {tokens['admin']}"}
    sealed = path.read_bytes()
    assert sealed != plain and plain[:4000] not in sealed  # the file is ciphertext
    assert len(sealed) > len(plain)
    key_row = await pool.fetchrow("SELECT * FROM recording_keys")
    assert key_row["key_id"] == "k1"
    assert key_row["stored_sha256"] == hashlib.sha256(sealed).hexdigest()
    as_filed = await pool.fetchval("SELECT subject_sha256 FROM custody WHERE kind = 'filed'")
    assert as_filed == hashlib.sha256(plain).hexdigest()  # custody names the plaintext
    await _plays_back(config, pool, plain, auth)

    # Rotation: k2 becomes current, k1 only unwraps; the audio file is not touched.
    k2 = filed.key("k2", "k2.key")
    rotating = _encrypted(config, k2, k1)
    keyring = keyring_for(rotating.storage.encryption)
    assert keyring is not None
    command = argparse.Namespace(command="keys", keys_command="rotate", batch=1)
    assert await keeping_cli.run(rotating, command) == 0
    assert "re-wrapped 1 data keys under k2" in capsys.readouterr().out
    assert (await rotate(pool, keyring)).rewrapped == 0  # resumable: nothing twice
    listing = argparse.Namespace(command="keys", keys_command="list")
    assert await keeping_cli.run(rotating, listing) == 0
    assert capsys.readouterr().out == "k2: 1 recordings\n"
    row = await pool.fetchrow("SELECT key_id, wrapped_key, rekeyed_at FROM recording_keys")
    assert row["key_id"] == "k2" and row["wrapped_key"] != key_row["wrapped_key"]
    assert path.read_bytes() == sealed
    events = await pool.fetch("SELECT recording_name, detail FROM custody "
                              "WHERE kind = 're-keyed'")  # fmt: skip
    assert [(e["recording_name"], e["detail"]) for e in events] == [
        (NAME, {"to": "k2", "from": "k1"})]
    # k1 forgotten: played with k2 alone.
    after = _encrypted(config, k2)
    await _plays_back(after, pool, plain, auth)
    report = await verify(pool, LocalStore(filed.archive), filed.ast,
                          keyring=keyring_for(after.storage.encryption))  # fmt: skip
    assert report.ok, report.problems


async def test_wrong_master_key_is_a_clear_error(
    filed: Filed, capsys: pytest.CaptureFixture[str]
) -> None:
    config, pool = filed.config, filed.pool
    bad = filed.key("k1", "wrong.key")
    wrong = _encrypted(config, bad)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(build_deps(wrong, pool))))
    await client.start_server()
    try:
        tokens = await add_users(UserStore(pool))
        answer = await client.get(f"/api/calls/{CALL}/recordings/{NAME}/audio",
                                  headers={"Authorization": f"Bearer {tokens['admin']}"})
        assert answer.status == 503
        body = await answer.json()
        assert body["error_id"] == "recording_undecryptable"
        assert "master key 'k1' does not unwrap" in body["message"]
    finally:
        await client.close()
    # The daemon refuses to start with it (it would wrap new recordings' keys with it),
    # and so does a rotation to it.
    with pytest.raises(SystemExit, match="master key 'k1' does not unwrap"):
        async with build(wrong):
            pass
    command = argparse.Namespace(command="keys", keys_command="rotate", batch=10)
    assert await keeping_cli.run(wrong, command) == 1
    assert "does not unwrap" in capsys.readouterr().err
    # Rotating to k2 with a wrong k1: refused, nothing changed.
    keyring = keyring_for(EncryptionConfig(filed.key("k2", "k2.key"), (bad,)))
    assert keyring is not None
    with pytest.raises(CryptError, match="does not unwrap"):
        await rotate(pool, keyring)
    assert await pool.fetchval("SELECT key_id FROM recording_keys") == "k1"


async def test_verify_finds_a_flipped_ciphertext_byte(filed: Filed) -> None:
    pool, path, store, ast = filed.pool, filed.path, LocalStore(filed.archive), filed.ast
    keyring = keyring_for(filed.config.storage.encryption)
    assert (await verify(pool, store, ast, keyring=keyring)).ok
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o640)
    path.write_bytes(bytes(data))
    for ring in (keyring, None):  # with the master key, and by the ciphertext hash alone
        report = await verify(pool, store, ast, keyring=ring)
        assert [p.kind for p in report.problems] == ["mismatch"] * (2 if ring else 1)
        assert "ciphertext SHA-256" in report.problems[0].detail
    report = await verify(pool, store, ast, keyring=keyring)
    assert "does not decrypt" in report.problems[1].detail


def test_master_key_errors_name_the_source_never_the_key(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("c2hvcnQ=")
    cases = [
        (MasterKeySource("k", tmp_path / "absent.key"), "cannot read"),
        (MasterKeySource("k", short), "5 bytes, a master key is 32"),
        (MasterKeySource("k", None, "VERBATIM_TEST_NO_SUCH_VAR"), "is not set"),
    ]
    for source, expected in cases:
        with pytest.raises(CryptError, match=expected) as caught:
            load_master(source, {})
        assert source.describe() in str(caught.value) and "c2hvcnQ" not in str(caught.value)
    key = new_master_key()
    assert load_master(MasterKeySource("k", None, "K"), {"K": key}).key_id == "k"


@pytest.mark.parametrize(("section", "expected"), [
    ("{key_id: k1}", "give exactly one of master_key_file"),
    ("{key_id: k1, master_key_file: /a, master_key_env: B}", "give exactly one"),
    ("{master_key_env: B}", "key_id: required key is missing"),
    ("{key_id: 'k 1', master_key_env: B}", "key_id: must be 1-64 letters"),
    ("{key_id: k1, master_key_file: rel/path}", "must be an absolute path"),
    ("{key_id: k1, master_key_env: 'A-B'}", "environment variable's name"),
    ("{key_id: k1, master_key_env: B, previous_keys: {k1: /a}}", "is the current key_id"),
    ("{key_id: k1, master_key_env: B, previous_keys: {k0: 'x'}}", "absolute file path or env"),
])  # fmt: skip
def test_encryption_config_errors(tmp_path: Path, section: str, expected: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("ari: {username: u, password: p}\ndatabase: {dsn: 'postgresql://u@h/d'}\n"
                    f"storage: {{archive_dir: /a, encryption: {section}}}\n")
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path, {})
    assert "storage.encryption" in str(caught.value)


def test_encryption_config_read(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("ari: {username: u, password: p}\ndatabase: {dsn: 'postgresql://u@h/d'}\n"
                    "storage:\n  archive_dir: /a\n  encryption:\n    key_id: k2\n"
                    "    master_key_file: /etc/verbatim/k2.key\n"
                    "    previous_keys: {k1: 'env:OLD_KEY', k0: /etc/verbatim/k0.key}\n")
    storage: StorageConfig = load_config(path, {}).storage
    assert storage.encryption == EncryptionConfig(
        MasterKeySource("k2", Path("/etc/verbatim/k2.key")),
        (MasterKeySource("k1", None, "OLD_KEY"),
         MasterKeySource("k0", Path("/etc/verbatim/k0.key"))))  # fmt: skip
    off = path.read_text().replace("  encryption:\n", "  encryption:\n    enabled: false\n")
    path.write_text(off)
    assert load_config(path, {}).storage.encryption is None


async def test_the_bucket_holds_the_ciphertext_and_the_purge_forgets_the_key(
    filed: Filed, bucket: S3Store
) -> None:
    config, pool, plain, path, archive, ast = (filed.config, filed.pool, filed.plain,
                                                filed.path, filed.archive, filed.ast)
    sealed = path.read_bytes()
    office = S3Store(bucket.client, bucket.bucket, ast)
    assert (await Uploader(pool, LocalStore(archive), office, ast).move_round()).moved == 1
    key = await pool.fetchval("SELECT path FROM recordings")
    assert key.startswith("s3://") and not path.exists()
    assert b"".join([c async for c in bucket.read(key)]) == sealed  # ciphertext only
    tokens = await add_users(UserStore(pool))
    await _plays_back(config, pool, plain, {"Authorization": f"Bearer {tokens['admin']}"},
                      bucket)  # fmt: skip
    store = TieredStore(LocalStore(archive), office)
    keyring = keyring_for(config.storage.encryption)
    assert (await verify(pool, store, ast, keyring=keyring)).ok

    done = await Purger(pool, store, policy(standard=Length(days=1)), ast).run(
        T0 + timedelta(days=30))  # fmt: skip
    assert done.audio == 1
    tomb = await pool.fetchval("SELECT sha256 FROM tombstones WHERE what = 'audio'")
    assert tomb == hashlib.sha256(plain).hexdigest()  # the plaintext's, as filed
    assert await pool.fetchval("SELECT count(*) FROM recording_keys") == 0
    listed = office.keys()
    assert [k async for k in listed] == []


async def test_the_daemon_files_encrypted_and_a_hook_call_plays_whole(
    pg_dsn: str, tmp_path: Path
) -> None:
    """The daemon (hook mode: a file per party's snoop) files each recording encrypted; each
    plays back as the plaintext it was filed with, and the whole-call mix is made from them
    without a decrypted file left in the archive."""
    enc = EncryptionConfig(MasterKeySource("k1", _key_file(tmp_path, "k1.key")))
    async with running_stack(tmp_path, pg_dsn, hooks=True, storage={"encryption": enc},
                             departments={"Intake": ("201", "202")}) as st:  # fmt: skip
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        await PLACERS["hook"](st)
        await st.settle()
        call_id = await st.only_call_id()
        archive, config = st.archive, st.config
    assert config is not None
    pool = await create_pool(pg_dsn, 1, 4)
    try:
        recs = await pool.fetch("SELECT name, path, sha256, duration_ms FROM recordings "
                                "WHERE call_id = $1 AND status = 'filed'", call_id)  # fmt: skip
        assert len(recs) >= 2
        for rec in recs:  # on disk: not the bytes the row's hash names
            assert hashlib.sha256(Path(rec["path"]).read_bytes()).hexdigest() != rec["sha256"]
        assert await pool.fetchval("SELECT count(*) FROM recording_keys WHERE call_id = $1 "
                                   "AND stored_sha256 IS NOT NULL", call_id) == len(recs)
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(build_deps(config, pool))))
        await client.start_server()
        try:
            tokens = await add_users(UserStore(pool))
            auth = {"Authorization": f"Bearer {tokens['admin']}"}
            for rec in recs:
                got = await client.get(f"/api/calls/{call_id}/recordings/{rec['name']}/audio",
                                       headers=auth)  # fmt: skip
                assert hashlib.sha256(await got.read()).hexdigest() == rec["sha256"]
            whole = await client.get(f"/api/calls/{call_id}/audio", headers=auth)
            assert whole.status == 200 and whole.headers["Content-Type"] == "audio/wav"
            mixed = tmp_path / "whole.wav"
            mixed.write_bytes(await whole.read())
            assert probe(mixed).duration_ms == max(r["duration_ms"] for r in recs)
            part = await client.get(f"/api/calls/{call_id}/audio",
                                    headers={**auth, "Range": "bytes=100-"})  # fmt: skip
            assert part.status == 206 and await part.read() == mixed.read_bytes()[100:]
        finally:
            await client.close()
        # Nothing decrypted in the archive: every file in it is a recording's ciphertext.
        assert sorted(str(p) for p in archive.rglob("*") if p.is_file()) == \
            sorted(r["path"] for r in recs)  # fmt: skip
        keyring = keyring_for(enc)
        office = await pool.fetchval("SELECT asterisk_id FROM calls WHERE call_id = $1", call_id)
        assert (await verify(pool, LocalStore(archive), office, keyring=keyring)).ok
    finally:
        await pool.close()


async def test_a_recording_fetched_over_ari_is_filed_encrypted(
    pg_dsn: str, tmp_path: Path
) -> None:
    """Asterisk on another host (no shared spool): the stream from ARI is measured, encrypted,
    and no plaintext is left beside the archive's files."""
    enc = EncryptionConfig(MasterKeySource("k1", _key_file(tmp_path, "k1.key")))
    async with running_stack(tmp_path, pg_dsn, spool_shared=False,
                             storage={"encryption": enc}) as st:  # fmt: skip
        caller_id, call_id = await bridged_call(st)
        await st.advance(3.0)
        st.sim.hangup(caller_id)
        await st.advance(0.5)
        await st.settle()
        rec = await st.repo.pool.fetchrow(
            "SELECT r.name, r.path, r.sha256, r.bytes, r.duration_ms, k.key_id, k.wrapped_key "
            "FROM recordings r JOIN recording_keys k USING (call_id, name) "
            "WHERE r.call_id = $1 AND r.status = 'filed'", call_id)  # fmt: skip
        assert rec is not None and rec["duration_ms"] >= 2500
        keyring = keyring_for(enc)
        assert keyring is not None
        key = keyring.data_key(WrappedKey(rec["key_id"], rec["wrapped_key"]), call_id, rec["name"])
        sealed = io.BytesIO(Path(rec["path"]).read_bytes())
        assert key.plain_digest(sealed) == (rec["sha256"], rec["bytes"])
        assert [p.name for p in Path(rec["path"]).parent.iterdir()] == [Path(rec["path"]).name]


WHERE = {"call_id": CALL, "name": NAME, "started_at": T0, "fmt": "wav"}  # Archive.file's


@contextlib.asynccontextmanager
async def encrypted_archive(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Archive, Any]]:
    """An archive in tmp_path/archive that encrypts under a new master key; its pool."""
    enc = EncryptionConfig(MasterKeySource("k1", _key_file(tmp_path, "k1.key")))
    keyring = keyring_for(enc)
    assert keyring is not None
    pool = await create_pool(pg_dsn, 1, 4)
    try:
        yield Archive(tmp_path / "archive", RecordingKeys(pool, keyring)), pool
    finally:
        await pool.close()


async def test_filing_again_after_a_crash_finds_it_filed(pg_dsn: str, tmp_path: Path) -> None:
    """A filer asked again (the spool copy still there, or gone) finds the same plaintext
    already filed under the key it was filed with; other audio under the name is kept apart."""
    spool = tmp_path / "spool"
    spool.mkdir()
    async with encrypted_archive(pg_dsn, tmp_path) as (store, pool):
        first = await store.file(write_wav(spool / "a.wav", 2.0), **WHERE)  # type: ignore[arg-type]
        wrapped = await pool.fetchval("SELECT wrapped_key FROM recording_keys")
        again = await store.file(write_wav(spool / "a.wav", 2.0), **WHERE)  # type: ignore[arg-type]
        assert again.already_filed and again.path == first.path
        assert (again.sha256, again.stored_sha256) == (first.sha256, first.stored_sha256)
        assert await pool.fetchval("SELECT wrapped_key FROM recording_keys") == wrapped
        found = await store.already_filed(**WHERE)  # type: ignore[arg-type]
        assert found is not None and found.sha256 == first.sha256
        assert found.duration_ms == 2000 and found.stored_sha256 == first.stored_sha256
        other = await store.file(write_wav(spool / "b.wav", 3.0), **WHERE)  # type: ignore[arg-type]
        assert other.conflict_with == first.path and other.path != first.path
        assert not any(p.name.startswith(".") for p in first.path.parent.iterdir())


class _AwayAtFirst:
    """The real pool, but the first `away` requests find PostgreSQL unreachable."""

    def __init__(self, pool: Any, away: int) -> None:
        self.pool, self.away = pool, away

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.pool, name)

        async def call(*args: Any) -> Any:
            if self.away > 0:
                self.away -= 1
                raise ConnectionRefusedError(111, "Connection refused")
            return await method(*args)

        return call


async def test_a_full_archive_is_a_full_archive_with_encryption_too(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive's disk fills while a recording is sealed: filing raises ArchiveFull (the
    recording waits in the spool, filed once space returns), as it does unencrypted, not the
    TinkError Tink makes of the write's ENOSPC (before: the recording reported missing, and
    the sweep's error every 15 s)."""
    import errno

    enc = EncryptionConfig(MasterKeySource("k1", _key_file(tmp_path, "k1.key")))
    keyring = keyring_for(enc)
    assert keyring is not None
    real_write = archive_module._Temp.write

    def full(temp: Any, data: bytes) -> None:
        if temp.size + len(data) > 200_000 and str(tmp_path / "archive") in str(temp.path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(temp, data)

    monkeypatch.setattr(archive_module._Temp, "write", full)
    pool = await create_pool(pg_dsn, 1, 2)
    try:
        archive = Archive(tmp_path / "archive", RecordingKeys(pool, keyring))
        src = write_wav(tmp_path / f"{NAME}.wav", 30.0)
        with pytest.raises(archive_module.ArchiveFull):
            await archive.file(src, call_id=CALL, name=NAME, started_at=T0, fmt="wav")
        assert src.exists()  # safe in the spool
    finally:
        await pool.close()


async def test_filing_waits_for_the_database_to_store_the_key(
    pg_dsn: str, tmp_path: Path
) -> None:
    enc = EncryptionConfig(MasterKeySource("k1", _key_file(tmp_path, "k1.key")))
    keyring = keyring_for(enc)
    assert keyring is not None
    pool = await create_pool(pg_dsn, 1, 2)
    try:
        keys = RecordingKeys(_AwayAtFirst(pool, 2), keyring)
        key = await keys.for_filing(CALL, NAME)
        assert await RecordingKeys(pool, keyring).for_reading(CALL, NAME) is not None
        assert key.subject == f"{CALL}/{NAME}".encode()
        gone = RecordingKeys(_AwayAtFirst(pool, 99), keyring)
        with pytest.raises(ConnectionRefusedError):
            await gone.for_filing(CALL, "other", wait_s=1.0)
        # once the file is placed (its spool copy gone), storing its ciphertext's hash, and
        # reading the key of a recording found filed already, wait for a blip too (before:
        # the recording was reported missing, its file in the archive named by no row)
        await RecordingKeys(_AwayAtFirst(pool, 1), keyring).placed(CALL, NAME, "ab" * 32, 9)
        assert await pool.fetchval("SELECT stored_bytes FROM recording_keys WHERE name = $1",
                                   NAME) == 9  # fmt: skip
        assert await RecordingKeys(_AwayAtFirst(pool, 1), keyring).for_reading(CALL, NAME)
    finally:
        await pool.close()


async def test_plaintext_never_rests_in_the_archive(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recording streamed from ARI with encryption on is encrypted as it arrives; measuring it
    (and measuring it again, as after a crash) reads a private copy outside the archive, removed
    at once. Checked while the stream comes in and whenever audio is probed: no file under the
    archive, temporary ones included, holds any of the plaintext."""
    archive = tmp_path / "archive"
    plain = bytearray(write_wav(tmp_path / "a.wav", 70.0).read_bytes())  # > one 1 MiB segment
    plain[44:] = os.urandom(len(plain) - 44)  # audio no ciphertext can contain by chance
    data = bytes(plain)
    pieces = [data[:44]] + [data[i:i + 64] for i in range(1000, len(data), 40_000)]

    def plaintext_in_archive() -> list[Path]:
        files = [p for p in archive.rglob("*") if p.is_file()]
        return [p for p in files if any(piece in p.read_bytes() for piece in pieces)]

    probed: list[Path] = []
    real_probe = probe  # what the archive calls

    def watching_probe(path: Path) -> Any:
        probed.append(Path(path))
        assert plaintext_in_archive() == []
        return real_probe(path)

    monkeypatch.setattr(archive_module, "probe", watching_probe)

    async def from_ari() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 64 * 1024):
            yield data[i:i + 64 * 1024]
            assert plaintext_in_archive() == []  # what was yielded is written by now

    async with encrypted_archive(pg_dsn, tmp_path) as (store, _):
        filed = await store.file_bytes(from_ari(), **WHERE)  # type: ignore[arg-type]
        assert (filed.sha256, filed.bytes) == (hashlib.sha256(data).hexdigest(), len(data))
        assert filed.duration_ms == 70_000
        again = await store.already_filed(**WHERE)  # type: ignore[arg-type]
        assert again is not None and again.duration_ms == 70_000
    assert len(probed) == 2 and not any(p.is_relative_to(archive) for p in probed)
    assert not any(p.parent.exists() for p in probed)  # the private copies went at once
    assert [p for p in archive.rglob("*") if p.is_file()] == [filed.path]
    assert plaintext_in_archive() == []


async def test_a_filing_that_cannot_start_encrypting_leaves_nothing(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The encrypting stream failing to open (after the private plaintext folder and both
    temporary files are made) raises, and leaves no folder or file behind, in the archive or
    the private place."""
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))  # where mkdtemp puts the folder

    def broken(self: DataKey, dst: Any) -> Any:
        raise CryptError("no stream today")

    monkeypatch.setattr(DataKey, "encrypting", broken)
    async with encrypted_archive(pg_dsn, tmp_path) as (store, _):
        with pytest.raises(CryptError, match="no stream today"):
            await store.file_bytes([b"RIFF plain audio"], **WHERE)  # type: ignore[arg-type]
    assert list(private.iterdir()) == []
    assert [p for p in (tmp_path / "archive").rglob("*") if p.is_file()] == []


async def test_a_filing_cancelled_while_its_files_are_made_leaves_nothing(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon stopping (its filing task cancelled) while a worker thread makes the private
    plaintext folder and the temporary files: the thread goes on, and what it made is removed
    once it is done, in the archive and the private place."""
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    entered, go_on = threading.Event(), threading.Event()
    opening = DataKey.encrypting

    def slow(self: DataKey, dst: Any) -> Any:
        entered.set()
        go_on.wait(10)
        return opening(self, dst)

    monkeypatch.setattr(DataKey, "encrypting", slow)
    async with encrypted_archive(pg_dsn, tmp_path) as (store, _):
        filing = asyncio.create_task(
            store.file_bytes([b"RIFF plain audio"], **WHERE))  # type: ignore[arg-type]
        assert await asyncio.to_thread(entered.wait, 10)
        assert list(private.iterdir()) != []  # the plaintext folder is there now
        filing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await filing
        go_on.set()
        for _ in range(200):  # the thread finishes, then what it made goes
            if not list(private.iterdir()):
                break
            await asyncio.sleep(0.01)
    assert list(private.iterdir()) == []
    assert [p for p in (tmp_path / "archive").rglob("*") if p.is_file()] == []


def test_a_killed_runs_plaintext_folder_is_removed_and_a_running_ones_kept(tmp_path: Path) -> None:
    """The private plaintext folders are named after their process: the daemon's start removes
    those of processes no longer running (decrypted audio a kill -9 left), keeps the others."""
    ended = subprocess.Popen(["true"])  # a process that has ended (and been reaped)
    ended.wait()
    left = tmp_path / f"verbatim-plain-{ended.pid}-abc123"
    mine = tmp_path / f"verbatim-plain-{os.getpid()}-def456"
    other = tmp_path / "verbatim-plain-notapid"
    for folder in (left, mine, other):
        folder.mkdir(mode=0o700)
        (folder / "a.wav").write_bytes(b"RIFF plain audio")
    assert archive_module.remove_stale_plain(tmp_path) == [left]
    assert not left.exists() and (mine / "a.wav").exists() and (other / "a.wav").exists()
