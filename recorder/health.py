"""`verbatim health`: is each part the daemon depends on there and usable?

The same report backs the HTTP API's health endpoint (a later issue). It never prints secrets:
the ARI URL is shown, the password and DSN are not.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Final

import aiohttp

from recorder.app import ari_client
from recorder.ari.client import AriClient, AriError
from recorder.config import Config
from recorder.db.repository import Repository
from recorder.storage.space import check_dir

# What the dialplan's fallbacks (dialplan/*.conf) play before they record; without it they refuse
# the call, so its absence is a failed check.
FALLBACK_SOUND: Final = "verbatim/consent"


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
        else:
            report["fallback_prompt"] = await _fallback_prompt(client)
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


async def _fallback_prompt(client: AriClient) -> dict[str, Any]:
    """Does Asterisk have the fallback's announcement (GET /sounds/{soundId})?"""
    try:
        sound = await client.sound(FALLBACK_SOUND)
    except AriError as exc:
        error = (f"Asterisk has no sound {FALLBACK_SOUND}: the dialplan fallback refuses calls "
                 "while the recorder is away; run `verbatim prompts install`"
                 if exc.status == 404 else str(exc))
        return {"ok": False, "sound": FALLBACK_SOUND, "error": error}
    languages = sorted({str(f.get("language")) for f in sound.get("formats", [])})
    return {"ok": True, "sound": FALLBACK_SOUND, "languages": languages}
