"""Connecting to PostgreSQL for the daemon and the API server, waiting while it is not up."""

from __future__ import annotations

import asyncio

import structlog

from recorder.config import Config
from recorder.db.repository import Repository

log = structlog.get_logger("verbatim.app")


async def connect_database(config: Config, *, wait: bool = True) -> Repository:
    """Connect, waiting (with a logged reason) while PostgreSQL is not up yet.

    While the daemon waits, the app is not registered with Asterisk, so `Stasis()` fails and
    the dialplan's fallback records the calls: nothing goes unrecorded.
    """
    delay = 1.0
    while True:
        try:
            return await Repository.connect(
                config.database.dsn.reveal(),
                min_size=config.database.pool_min,
                max_size=config.database.pool_max,
            )
        except (TimeoutError, OSError, Exception) as exc:  # asyncpg raises many kinds
            if not wait:
                raise
            log.warning("db.unavailable", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
