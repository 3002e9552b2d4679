"""Rows into the API's JSON: ISO 8601 times, URLs for a call's detail and audio, no file paths
(where the archive keeps a file is none of a client's business)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from recorder.api.service import Page


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"))


def json_ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


def call_url(call_id: str) -> str:
    return f"/api/calls/{quote(call_id, safe='')}"


def recording_urls(call_id: str, name: str) -> dict[str, str]:
    base = f"{call_url(call_id)}/recordings/{quote(name, safe='')}"
    return {"audio_url": f"{base}/audio", "download_url": f"{base}/download"}


def call_summary(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["url"] = call_url(row["call_id"])
    return out


def page_json(page: Page) -> dict[str, Any]:
    return {"calls": [call_summary(c) for c in page.calls], "next_cursor": page.next_cursor}


def detail_json(detail: dict[str, Any]) -> dict[str, Any]:
    call_id = detail["call"]["call_id"]
    recordings = []
    for rec in detail["recordings"]:
        item = dict(rec)
        if rec["status"] == "filed":
            item.update(recording_urls(call_id, rec["name"]))
        recordings.append(item)
    return {**detail, "call": call_summary(detail["call"]), "recordings": recordings}
