"""`verbatim health`: is each part the daemon depends on there and usable, and how is the
running daemon doing?

Its own probes (ARI, the fallback prompt, PostgreSQL, the spool and the archive), then, when the
daemon's metrics listener answers (`metrics:`), its figures from /metrics and its /readyz under
"daemon". A daemon that is not running is reported as not reachable and does not fail the
report: `verbatim health` is also how one checks a host before starting it. It never prints
secrets: the ARI URL is shown, the password and DSN are not.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Final

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from recorder.ari.client import AriClient, AriError
from recorder.config import Config
from recorder.db.repository import Repository
from recorder.service.app import ari_client
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
        finally:
            await client.close()
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
    report["daemon"] = await daemon_figures(config)
    report["ok"] = all(
        part.get("ok") for part in report.values()
        if isinstance(part, dict) and part.get("reachable", True)
    )  # fmt: skip
    return report


async def daemon_figures(config: Config) -> dict[str, Any]:
    """The running daemon's /metrics (its `verbatim_*` figures) and /readyz."""
    m = config.metrics
    host = "127.0.0.1" if m.host in ("0.0.0.0", "::") else m.host  # noqa: S104 (we connect)
    base = f"http://{f'[{host}]' if ':' in host else host}:{m.port}"
    url = f"{base}/metrics"
    if not m.enabled:
        return {"reachable": False, "url": url, "error": "metrics.enabled is false"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as resp:
                resp.raise_for_status()
                text = await resp.text()
            async with http.get(f"{base}/readyz") as resp:
                ok, ready = resp.status == 200, await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"reachable": False, "url": url, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": ok, "reachable": True, "url": url, "ready": ready, "figures": _figures(text)}


def _figures(text: str) -> dict[str, Any]:
    """`verbatim_*` samples, readably: a plain value, or by the label that tells them apart
    (a disk's level as its name)."""
    found: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("verbatim_") or sample.name.endswith("_bucket"):
                continue  # a histogram's buckets read as noise here: its count and sum stay
            labels = {k: v for k, v in sample.labels.items() if k != "path"}
            if sample.name == "verbatim_disk_level":
                if sample.value == 1:
                    found.setdefault(sample.name, {})[labels["dir"]] = labels["level"]
            elif labels:
                found.setdefault(sample.name, {})[next(iter(labels.values()))] = sample.value
            else:
                found[sample.name] = sample.value
    return found


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
