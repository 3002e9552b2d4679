"""The daemon's keeping jobs: the daily purge of this server's expired recordings, and the
periodic verification of its archive and the custody chains (`verbatim verify`, sampled).

Each verification is logged as `custody.verified` (info; error when it found problems) with
its figures, then handed to every callable in `Keeper.on_verified`: the hook for the health
line and metrics (`keeper.on_verified.append(callback)`; a callback must not block).

They start once the daemon knows which Asterisk server it serves (its first reconciliation),
run beside the calls (their own database connections, files deleted off the event loop), and a
failure is logged and retried later: it never stops the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

import structlog

from recorder.common.background import beside
from recorder.config import Config, KeepingConfig
from recorder.keeping.purge import Purger, PurgeReport
from recorder.keeping.verify import VerifyReport, verify
from recorder.policy.model import Policy
from recorder.storage.crypt import Keyring
from recorder.storage.objects import S3Store
from recorder.storage.store import LocalStore, RecordingStore
from recorder.storage.tiered import store_for

log = structlog.get_logger("verbatim.keeping")

RETRY_S: Final = 3600.0  # after a failed run (PostgreSQL away, say)
Clock = Callable[[], datetime]


def next_purge(now: datetime, at: str) -> datetime:
    """The first `at` (HH:MM UTC) strictly after `now`."""
    hour, minute = (int(part) for part in at.split(":"))
    day = now.astimezone(UTC)
    candidate = datetime.combine(day.date(), time(hour, minute), UTC)
    return candidate if candidate > day else candidate + timedelta(days=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Keeper:
    def __init__(
        self,
        pool: Any,
        store: RecordingStore,
        policy: Policy,
        config: KeepingConfig,
        clock: Clock = _utcnow,
        store_for: Callable[[str], RecordingStore] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        # An office's store when it depends on the office (the bucket's part of storage.s3).
        self.store_for = store_for or (lambda _: store)
        self.policy = policy
        self.keyring = keyring  # storage.encryption: verify checks encrypted files' plaintext
        self.config = config
        self.clock = clock
        self.on_verified: list[Callable[[VerifyReport], None]] = []
        self.last_verified: VerifyReport | None = None

    async def purge(self, asterisk_id: str) -> PurgeReport:
        purger = Purger(self.pool, self.store_for(asterisk_id), self.policy, asterisk_id,
                        batch=self.config.purge_batch)  # fmt: skip
        return await purger.run(self.clock(), kind="daily")

    async def verify(self, asterisk_id: str) -> VerifyReport:
        report = await verify(self.pool, self.store_for(asterisk_id), asterisk_id,
                              sample_percent=self.config.verify_sample_percent,
                              keyring=self.keyring)  # fmt: skip
        figures = report.as_dict()
        del figures["details"]
        if report.ok:
            log.info("custody.verified", **figures)
        else:
            log.error("custody.verified", **figures,
                      first=[f"{p.kind}: {p.where}: {p.detail}" for p in report.problems[:5]])
        self.last_verified = report
        for callback in self.on_verified:
            try:
                callback(report)
            except Exception:  # a hook's bug must not stop verification
                log.exception("custody.hook_failed")
        return report

    async def run(self, asterisk_id: Callable[[], str]) -> None:
        """Forever: the purge at purge_at each day; a verification every verify_every_s."""
        await asyncio.gather(self._purges(asterisk_id), self._verifications(asterisk_id))

    async def _verifications(self, asterisk_id: Callable[[], str]) -> None:
        every = self.config.verify_every_s
        while every:
            await asyncio.sleep(every)  # not at every start: a full re-hash reads the archive
            try:
                await self.verify(asterisk_id())
            except Exception as exc:
                log.error("custody.verify_failed", error=f"{type(exc).__name__}: {exc}")

    async def _purges(self, asterisk_id: Callable[[], str]) -> None:
        at = self.config.purge_at
        if at is None:
            return
        due = next_purge(self.clock(), at)
        while True:
            await asyncio.sleep(max(0.0, (due - self.clock()).total_seconds()))
            try:
                await self.purge(asterisk_id())
                due = next_purge(self.clock(), at)
            except Exception as exc:  # the next try will do it; the daemon goes on
                log.error("retention.purge_failed", error=f"{type(exc).__name__}: {exc}",
                          retry_in_s=RETRY_S)  # fmt: skip
                due = self.clock() + timedelta(seconds=RETRY_S)


def keeper_for(config: Config, pool: Any, bucket: S3Store | None = None) -> Keeper:
    """`bucket`: storage.s3's whole bucket, open (recorder.storage.tiered)."""
    from recorder.policy import load_policy, numbering_from
    from recorder.storage.keys import open_keyring

    policy = load_policy(config.calls.policy_file, numbering_from(config.calls))
    return Keeper(pool, LocalStore(config.storage.archive_dir), policy, config.keeping,
                  store_for=store_for(config, bucket), keyring=open_keyring(config))  # fmt: skip


@contextlib.asynccontextmanager
async def keeping(keeper: Keeper, ready: asyncio.Event,
                  asterisk_id: Callable[[], str]) -> AsyncIterator[None]:  # fmt: skip
    """Run the keeper beside the block, from when `ready` is set (the server is known)."""

    async def start() -> None:
        await ready.wait()
        await keeper.run(asterisk_id)

    async with beside(start(), "verbatim-keeping"):
        yield
