"""`verbatim health`: is each part the daemon depends on there and usable?

The same report backs the HTTP API's health endpoint (a later issue). It never prints secrets:
the ARI URL is shown, the password and DSN are not.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import aiohttp

from recorder.app import ari_client
from recorder.ari.client import AriError
from recorder.config import Config
from recorder.db.repository import Repository
from recorder.storage.space import check_dir


async def check_health(config: Config) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        client = ari_client(session, config, min(config.ari.request_timeout_s, 5.0))
        try:
            info = await client.info()
            report["ari"] = {
                "ok": True,
                "url": config.ari.url,
                "asterisk_id": info.get("system", {}).get("entity_id"),
                "version": info.get("system", {}).get("version"),
            }
        except AriError as exc:
            report["ari"] = {"ok": False, "url": config.ari.url, "error": str(exc)}
    try:
        repo = await Repository.connect(config.database.dsn.reveal(), min_size=1, max_size=1)
        try:
            await repo.ping()
            report["database"] = {"ok": True}
        finally:
            await repo.close()
    except Exception as exc:  # any failure to reach PostgreSQL is the answer, not a crash
        report["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    dirs = {"archive": config.storage.archive_dir}
    if config.storage.spool_dir is not None:
        dirs["spool"] = config.storage.spool_dir
    for key, path in dirs.items():
        health = check_dir(path, config.storage.min_free_mb)
        report[key] = {"path": str(path), **asdict(health)}
    report["ok"] = all(part.get("ok") for part in report.values() if isinstance(part, dict))
    return report
