"""Wiring: build every collaborator from the configuration, in one place, and run the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import structlog

from recorder.agi import AgiServer
from recorder.ari.client import AriClient
from recorder.ari.connection import EventStream
from recorder.ari.events import Event
from recorder.common.loop import name_of
from recorder.config import Config
from recorder.db.connect import connect_database
from recorder.db.controls import ControlQueue
from recorder.db.migrate import pending_migrations
from recorder.db.repository import Repository
from recorder.model.settings import CallSettings
from recorder.policy import load_policy, numbering_from
from recorder.policy.jurisdiction import load_geocoder
from recorder.service import heap
from recorder.service.daemon import Daemon
from recorder.service.journal import Journal
from recorder.service.metrics import Monitor, disk_watch
from recorder.service.recovery import SpoolSweeper
from recorder.service.writer import Writer
from recorder.storage.archive import Archive, remove_stale_plain
from recorder.storage.crypt import CryptError
from recorder.storage.keys import RecordingKeys, check_keyring, open_keyring

log = structlog.get_logger("verbatim")


def ari_client(
    session: aiohttp.ClientSession, config: Config, timeout_s: float | None = None
) -> AriClient:
    ari = config.ari
    timeout = ari.request_timeout_s if timeout_s is None else timeout_s
    return AriClient(session, ari.url, ari.username, ari.password.reveal(), ari.app, timeout,
                     subscribe_all=config.hooks.enabled)


def call_settings(config: Config) -> CallSettings:
    calls = config.calls
    departments = {ext: name for name, exts in calls.departments.items() for ext in exts}
    return CallSettings(
        app=config.ari.app,
        dial_strings={
            "inbound": calls.dial_strings.inbound,
            "outbound": calls.dial_strings.outbound,
            "internal": calls.dial_strings.internal,
        },
        dial_timeout_s=calls.dial_timeout_s,
        dial_method=calls.dial_method,
        consent_media=calls.consent_prompt,
        ringback_media=calls.ringback,
        format=config.storage.format,
        default_region=calls.default_region,
        outside_line_prefix=calls.outside_line_prefix,
        extension_pattern=calls.extensions.pattern,
        departments=departments,
        ring_groups=dict(calls.ring_groups),
        controls=dict(calls.controls),
        policy=load_policy(calls.policy_file, numbering_from(calls)),
    )


@dataclass
class Running:
    daemon: Daemon
    repo: Repository
    session: aiohttp.ClientSession
    agi: AgiServer | None = None  # the hooks' FastAGI server, when hooks.enabled
    agi_address: tuple[str, int] | None = None  # where it listens (port 0 in tests: chosen)
    monitor: Monitor | None = None  # metrics, watermarks, the health line (service.metrics)
    metrics_address: tuple[str, int] | None = None  # where /metrics listens, when enabled


@contextlib.asynccontextmanager
async def build(config: Config) -> AsyncIterator[Running]:
    keyring = open_keyring(config)  # before anything starts: a bad master key stops here
    repo = await connect_database(config)
    try:
        missing = await pending_migrations(repo.pool)
        if missing:
            raise SystemExit(
                f"database schema is not up to date (missing {', '.join(missing)}): "
                "run `verbatim migrate` first"
            )
        if keyring is not None:
            try:
                await check_keyring(repo.pool, keyring)
            except CryptError as exc:
                raise SystemExit(f"storage.encryption: {exc}") from None
        # Asterisk sets no cookies: a jar would be searched before every request for nothing.
        session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        client = ari_client(session, config)  # cannot fail: ari.url was checked at load
        try:
            keys = None if keyring is None else RecordingKeys(repo.pool, keyring)
            archive = Archive(config.storage.archive_dir, keys)
            if stale := await asyncio.to_thread(remove_stale_plain):
                # decrypted audio a killed run left outside the archive: gone now
                log.warning("archive.stale_plaintext_removed", folders=len(stale))
            spool = config.storage.spool_dir
            sweeper = None if spool is None else SpoolSweeper(
                spool, archive, repo, config.storage.spool_settle_s, config.storage.spool_sweep_s)

            def stream_factory(
                on_connected: Callable[[], Awaitable[None]],
                on_event: Callable[[Event], Awaitable[None]],
            ) -> EventStream:
                return EventStream(
                    session,
                    client,
                    on_connected,
                    on_event,
                    config.ari.reconnect_initial_s,
                    config.ari.reconnect_max_s,
                )

            # Rows a previous run could not write (PostgreSQL was away when it died) first: the
            # calls they describe are adopted as they stood, not taken for new ones.
            writer = Writer(repo, journal=Journal(config.storage.journal,
                                                  config.storage.journal_max_mb * 1024 * 1024))
            await writer.replay()
            await asyncio.to_thread(load_geocoder)  # policy asks where callers are
            watch = disk_watch(config)
            daemon = Daemon(
                client=client,
                stream_factory=stream_factory,
                writer=writer,
                archive=archive,
                settings=call_settings(config),
                spool_dir=spool,
                sweeper=sweeper,
                hook_timeout_s=config.hooks.reply_timeout_s,
                controls=ControlQueue(repo.pool, listen_dsn=config.database.dsn.reveal()),
                recording_refusal=watch.refusal,
            )
            agi, address = None, None
            if config.hooks.enabled:
                agi = AgiServer(daemon.hooks.handlers, config.hooks.host, config.hooks.port)
                address = await agi.start()
                log.info("hooks.listening", host=address[0], port=address[1])
            monitor = Monitor(config, daemon, repo, agi, watch)
            try:
                metrics_address = await monitor.start()
                yield Running(daemon, repo, session, agi, address, monitor, metrics_address)
            finally:
                await monitor.stop()
                if agi is not None:
                    await agi.stop()
                await writer.close()
        finally:
            await client.close()
            await session.close()
    finally:
        await repo.close()


async def run(config: Config) -> None:
    """`verbatim run`: until SIGTERM/SIGINT."""
    async with build(config) as running:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(running.daemon.stop()))
        log.info("verbatim.started", ari=config.ari.url, app=config.ari.app,
                 office=config.asterisk.label, event_loop=name_of(loop))
        from recorder.api.server import http_if_enabled
        from recorder.keeping.job import keeper_for, keeping
        from recorder.storage.compact import compacts_if_configured
        from recorder.storage.tiered import bucket_if_configured
        from recorder.storage.upload import uploads_if_s3

        daemon = running.daemon
        async with (
            http_if_enabled(config),  # the search API and page, when http.enabled
            bucket_if_configured(config) as bucket,  # storage.s3's, or None
            keeping(keeper_for(config, running.repo.pool, bucket), daemon.ready,
                    lambda: daemon.asterisk_id),  # daily purge, periodic verify
            # storage.backend s3: filed recordings moved to the bucket
            uploads_if_s3(config, running.repo.pool, bucket, daemon.ready,
                          lambda: daemon.asterisk_id,
                          status=running.monitor.uploads if running.monitor else None),
            # storage.compact: Opus or MP3 copies of filed recordings
            compacts_if_configured(config, running.repo.pool, daemon.ready,
                                   lambda: daemon.asterisk_id),
        ):
            heap.settle()
            trimming = asyncio.create_task(heap.trim_periodically(), name="verbatim-heap-trim")
            try:
                await daemon.run()
            finally:
                trimming.cancel()
                await asyncio.gather(trimming, return_exceptions=True)
        log.info("verbatim.stopped")
