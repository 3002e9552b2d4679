"""kill -9 of the daemon (`verbatim run`, a real process) while it uploads a long recording to a
real SeaweedFS, then a restart: the recording arrives once, with its hash; until the store had it
the local copy and the row stayed as they were; the dead run's unfinished multipart upload is
aborted.

The store is slowed by a throttling TCP proxy in front of SeaweedFS's S3 port (what the daemon
is given as its endpoint), so the kill lands in the middle of the upload, after its first part.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from arisim.server import Simulator

from recorder.db.repository import Repository
from recorder.devtools.config import config_text
from recorder.storage.objects import S3Store
from tests.harness.daemon import Proc, connected, until
from tests.harness.keeping_world import seed_call
from tests.harness.seaweedfs import ACCESS, BUCKET, SECRET, SeaweedFS
from tests.harness.stack import PASSWORD

MB = 1 << 20


class Throttle:
    """A TCP proxy to `port` that passes what the client sends at `rate` bytes/s (the answers
    at full speed), counting it: a slow link to the store."""

    def __init__(self, port: int, rate: int) -> None:
        self.port, self.rate, self.sent = port, rate, 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            store_r, store_w = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, store_w, slow=True),
                             self._pipe(store_r, client_w, slow=False))  # fmt: skip

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, slow: bool) -> None:
        try:
            while chunk := await r.read(64 * 1024):
                w.write(chunk)
                await w.drain()
                if slow:
                    self.sent += len(chunk)
                    await asyncio.sleep(len(chunk) / self.rate)
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)


async def objects(store: S3Store) -> list[str]:
    found = store.keys()
    return [k async for k in found]


@contextlib.asynccontextmanager
async def daemon_on_a_slow_store(
    tmp_path: Path, dsn: str, seaweed: SeaweedFS, office: str
) -> AsyncIterator[tuple[Simulator, Proc, Repository, Throttle]]:
    spool, archive = tmp_path / "spool", tmp_path / "archive"
    sim = Simulator(spool_dir=spool, password=PASSWORD, asterisk_id=office)
    url = await sim.start()
    throttle = Throttle(seaweed.ports["s3.port"], rate=4 * MB)
    endpoint = await throttle.start()
    config = tmp_path / "verbatim.yaml"
    s3 = {"bucket": BUCKET, "endpoint": endpoint, "access_key": ACCESS, "secret_key": SECRET,
          "retry_max_s": 0.5, "multipart_threshold_mb": 8, "part_size_mb": 5}
    config.write_text(config_text(url=url, spool=spool, archive=archive, pool_max=2,
                                  s3=s3))  # fmt: skip
    proc = Proc(config, dsn, tmp_path / "daemon.log")
    repo = await Repository.connect(dsn, max_size=2)
    try:
        yield sim, proc, repo, throttle
    finally:
        code = await proc.stop() if proc.proc else 0
        await repo.close()
        await throttle.stop()
        await sim.stop()
        log = proc.log.read_text() if proc.log.exists() else ""
        assert code in (0, -9), f"daemon exited {code}:\n{log[-3000:]}"
        assert "Traceback" not in log, log[-3000:]


async def test_kill_9_mid_upload_loses_nothing_and_uploads_once(
    tmp_path: Path, pg_dsn: str, seaweed: SeaweedFS, bucket: S3Store
) -> None:
    office = f"pbx-{uuid.uuid4().hex[:8]}"
    store = S3Store(bucket.client, bucket.bucket, office)
    async with daemon_on_a_slow_store(tmp_path, pg_dsn, seaweed, office) as (
        sim, proc, repo, throttle,
    ):  # fmt: skip
        # A filed 20 MB recording (four parts of 5 MB; about 5 s through the proxy).
        (local,) = await seed_call(repo, tmp_path / "archive", "long", asterisk_id=office)
        data = os.urandom(20 * MB)
        local.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        await repo.pool.execute("UPDATE recordings SET sha256 = $1, bytes = $2 "
                                "WHERE name = 'long-s1'", sha, len(data))  # fmt: skip
        key = store.key_for(str(local.relative_to(tmp_path / "archive")))

        async def unfinished() -> list[str]:
            found = await bucket.client.list_multipart_uploads(Bucket=BUCKET,
                                                               Prefix=f"{office}/")  # fmt: skip
            return [u["Key"] for u in found.get("Uploads", ())]

        async def path() -> str:
            return str(await repo.pool.fetchval(
                "SELECT path FROM recordings WHERE name = 'long-s1'"))  # fmt: skip

        proc.start()
        await connected(sim)

        async def second_part_going() -> bool:
            return throttle.sent > 7 * MB

        await until(second_part_going, limit=20.0)
        proc.kill9()
        # Mid-upload: the store has the unfinished upload, no object; the recording is still
        # the local file, and its row says so.
        assert throttle.sent < len(data)
        assert await unfinished() == [key.removeprefix(f"s3://{BUCKET}/")]
        assert await objects(store) == []
        assert local.read_bytes() == data and await path() == str(local)
        assert await repo.pool.fetchval("SELECT count(*) FROM uploads WHERE asterisk_id = $1",
                                        office) == 0  # fmt: skip

        proc.start()

        async def moved() -> bool:
            removed = await repo.pool.fetchval(
                "SELECT local_removed_at IS NOT NULL FROM uploads WHERE asterisk_id = $1 AND "
                "name = 'long-s1'", office)  # fmt: skip
            return bool(removed)

        await until(moved, limit=30.0)
        assert await path() == key
        assert await objects(store) == [key]
        digest = await store.digest(key)
        assert digest is not None and (digest.sha256, digest.size) == (sha, len(data))
        assert await unfinished() == []  # the dead run's was aborted (and the new one done)
        assert not local.exists()
        assert await repo.pool.fetchval(
            "SELECT count(*) FROM custody WHERE chain = $1 AND kind = 'moved'", office) == 1
        log = proc.log.read_text()
        assert '"upload.unfinished_aborted"' in log and log.count('"recording.uploaded"') == 1
