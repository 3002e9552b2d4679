"""Finding calls and their recordings for a user: scoped SQL, access-log rows, archive files.

Every read goes through the user's scope in SQL (scope.call_scope), so a call out of scope is a
404 exactly like one that does not exist. Audio files are only ever paths read from the
recordings table, and are served only if they resolve (symlinks followed) to a regular file
inside the configured archive root; nothing in a request becomes part of a path.

An encrypted recording (storage.encryption) is decrypted as it is served. The call page's
whole-call mix and waveforms are made from plaintext files: for an encrypted archive those are
decrypted copies, kept with everything made from them in a private temporary directory of this
process (`derived_root`, mode 0700, removed when it ends), never in the archive, and each call's
removed once unused for SCRATCH_KEEP_S (so none outlives a purge by long).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from recorder.api.access_log import AccessLog, Origin
from recorder.api.auth import Principal
from recorder.api.errors import ApiError, not_found
from recorder.api.params import encode_cursor
from recorder.api.scope import Params, call_columns, call_scope
from recorder.api.search import CALL_COLUMNS, SearchQuery, count_sql, search_sql
from recorder.storage.crypt import CryptError, DataKey, WrappedKey
from recorder.storage.keys import RecordingKeys
from recorder.storage.objects import SCHEME, S3Store
from recorder.storage.store import DERIVED

log = structlog.get_logger(__name__)

SCRATCH_KEEP_S = 900.0

# A call's parts, by call_id (the columns of 0001; later migrations may add more).
_LEGS = (
    "SELECT channel_id, channel_name, role, caller_name, caller_number, started_at, "
    "answered_at, ended_at, hangup_cause, outcome, talked_ms, covered_ms, held_ms "
    "FROM legs WHERE call_id = $1 "
    "ORDER BY started_at, channel_id"
)
_RECORDINGS = (
    "SELECT asterisk_id, name, segment, format, status, requested_at, started_at, ended_at, "
    "duration_ms, bytes, sha256, error, fallback, target, legs FROM recordings "
    "WHERE call_id = $1 "
    "ORDER BY segment, requested_at, name"
)
_EVENTS = (
    "SELECT id, at, kind, channel_id, recording_name, detail FROM call_events "
    "WHERE call_id = $1 ORDER BY at, id"
)
def _linked_as_seen(event: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    """An event row naming a linked call (an attended transfer's `linked_call`) names it only
    if the user may see that call: its id says that it exists, and when it began."""
    detail = event.get("detail")
    if isinstance(detail, dict) and detail.get("linked_call") not in (None, *seen):
        event["detail"] = {k: v for k, v in detail.items() if k != "linked_call"}
    return event


_GAPS = (
    "SELECT channel_id, starts_at, ends_at, duration_ms, reason FROM coverage_gaps "
    "WHERE call_id = $1 ORDER BY starts_at, id"
)
_TAGS = "SELECT coalesce(array_agg(tag ORDER BY tag), '{}') FROM call_tags WHERE call_id = $1"


@dataclass(frozen=True)
class Page:
    calls: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None  # matches counted up to search.COUNT_CAP + 1 (None: not asked)


@dataclass(frozen=True)
class AudioFile:
    call_id: str
    asterisk_id: str
    name: str
    format: str
    path: Path | None  # resolved, inside the archive; None when in the object store
    key: str | None = None  # its object's key (recordings.path) when in the object store
    sealed: DataKey | None = None  # encrypted at rest: its data key
    size: int | None = None  # the recording's (plaintext) bytes


def _inside_archive(root: Path, stored: str) -> Path | None:
    """The real path of `stored` if it is a regular file under `root`, else None."""
    path = Path(stored)
    if not path.is_absolute():
        path = root / path
    try:
        real = path.resolve(strict=True)
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(real_root) or not real.is_file():
        return None
    return real


class CallService:
    def __init__(
        self, pool: Any, archive_root: Path, access_log: AccessLog,
        objects: S3Store | None = None, keys: RecordingKeys | None = None,
    ) -> None:  # fmt: skip
        self.pool = pool
        self.archive_root = archive_root
        self.objects = objects  # the whole bucket (every office's recordings), when configured
        self.access_log = access_log
        self.keys = keys  # storage.encryption's master keys, when configured
        self._scratch = tempfile.TemporaryDirectory(prefix="verbatim-derived-") if keys else None
        # Where the call page's derived files go (recorder.web.playback: <root>/.derived/...).
        self.derived_root = Path(self._scratch.name) if self._scratch else archive_root
        self._consent_sql: str | bool | None = False  # False: not looked up yet

    async def search(self, principal: Principal, q: SearchQuery, origin: Origin,
                     *, count: bool = False, export: str | None = None) -> Page:  # fmt: skip
        """One page of matches (logged as a search; `export`: the format it was sent in);
        `count`: also how many match, up to search.COUNT_CAP + 1."""
        sql, args = search_sql(principal, q)
        rows = [dict(r.items()) for r in await self.pool.fetch(sql, *args)]
        page, more = rows[: q.limit], len(rows) > q.limit
        total = None
        if count:
            counting, count_args = count_sql(principal, q)
            total = await self.pool.fetchval(counting, *count_args)
        detail: dict[str, Any] = {"filters": q.filters(), "results": len(page),
                                  "page": q.after is not None}  # fmt: skip
        if export:
            detail["export"] = export
        await self.access_log.record(principal, "search", origin, detail=detail)
        last = page[-1] if page else None
        return Page(page, self._cursor(q, last) if more and last else None, total)

    async def search_more(self, principal: Principal, q: SearchQuery) -> Page:
        """A further page of a search already logged (a CSV export's next rows)."""
        sql, args = search_sql(principal, q)
        rows = [dict(r.items()) for r in await self.pool.fetch(sql, *args)]
        page, more = rows[: q.limit], len(rows) > q.limit
        last = page[-1] if page else None
        return Page(page, self._cursor(q, last) if more and last else None)

    def _cursor(self, q: SearchQuery, last: dict[str, Any]) -> str:
        key = last["started_at"] if q.sort == "started" else (
            -1 if last["duration_s"] is None else last["duration_s"])
        return encode_cursor(key, last["call_id"])

    async def detail(self, principal: Principal, call_id: str, origin: Origin) -> dict[str, Any]:
        found = await self.parts(principal, call_id, "view", origin)
        await self.access_log.record(principal, "view", origin, call_id=call_id)
        return found

    async def parts(
        self, principal: Principal, call_id: str, action: str, origin: Origin
    ) -> dict[str, Any]:
        """The call's rows if it is in the user's scope (else the attempt is logged as
        `action` and 404); the caller logs the access itself."""
        args = Params()
        cols = call_columns(principal, args, CALL_COLUMNS)
        sql = (
            f"SELECT {cols} FROM calls c "  # noqa: S608 (our identifiers; values are $n)
            f"WHERE c.call_id = {args.add(call_id)} AND {call_scope(principal, args)}"
        )
        call = await self.pool.fetchrow(sql, *args.values)
        if call is None:
            await self._denied(principal, action, origin, call_id)
            raise not_found("call", call_id=call_id)
        legs = await self.pool.fetch(_LEGS, call_id)
        recordings = await self.pool.fetch(_RECORDINGS, call_id)
        events = await self.pool.fetch(_EVENTS, call_id)
        tags = await self.pool.fetchval(_TAGS, call_id)
        seen = set(call["linked_calls"] or [])  # as far as the user may see (call_columns)
        event_rows = [_linked_as_seen(dict(e.items()), seen) for e in events]
        return {
            "call": dict(call.items()),
            "legs": [dict(r.items()) for r in legs],
            "recordings": [dict(r.items()) for r in recordings],
            "events": event_rows,
            # Transfers are events (kind transfer.*) written by the call model; shown apart too.
            "transfers": [e for e in event_rows if "transfer" in e["kind"]],
            "consent": await self._consent(call_id),
            "tags": list(tags),
        }

    async def story(self, principal: Principal, call_id: str) -> dict[str, Any]:
        """What the call's page draws besides its rows: the call model's last state (None
        for calls recorded before it was kept), the stored gaps, and the linked calls the
        user may see. Only for a call `parts` has just found in scope."""
        row = await self.pool.fetchrow(
            "SELECT state, linked_calls FROM calls WHERE call_id = $1", call_id)
        gaps = await self.pool.fetch(_GAPS, call_id)
        args = Params()
        linked = args.add(list(row["linked_calls"] or []) if row else [])
        others = await self.pool.fetch(
            "SELECT c.call_id, c.started_at, c.caller_number, c.callee_number FROM calls c "  # noqa: S608
            f"WHERE c.call_id = ANY({linked}::text[]) AND {call_scope(principal, args)} "
            "ORDER BY c.started_at", *args.values)  # fmt: skip
        state = row["state"] if row else None
        return {
            "state": state,
            "gaps": [dict(g.items()) for g in gaps],
            "linked": [dict(r.items()) for r in others],
        }

    async def archive_files(self, call_id: str) -> dict[str, Path]:
        """name -> the real path of each filed recording of the call that is in the archive
        (for a call `parts` has just found in scope; never sent to a client)."""
        rows = await self.pool.fetch(
            "SELECT r.name, r.path, r.format, r.sha256, k.key_id, k.wrapped_key "
            "FROM recordings r LEFT JOIN recording_keys k "
            "ON k.call_id = r.call_id AND k.name = r.name WHERE r.call_id = $1 "
            "AND r.status = 'filed' AND r.path IS NOT NULL", call_id)  # fmt: skip
        out: dict[str, Path] = {}
        if self._scratch is not None:
            await asyncio.to_thread(self._sweep_scratch, call_id)
        for row in rows:
            if row["key_id"] is not None:
                real = await self._plain_copy(call_id, row)
            elif row["path"].startswith(SCHEME):
                real = await self._local_copy(call_id, row)
            else:
                real = await asyncio.to_thread(_inside_archive, self.archive_root, row["path"])
            if real is not None:
                out[row["name"]] = real
        return out

    async def _local_copy(self, call_id: str, row: Any) -> Path | None:
        """A recording moved to the object store, copied beside the call's other derived files
        (the whole-call mix and waveforms are made from files; a purge deletes them all)."""
        if self.objects is None or not self.objects.owns(row["path"]):
            return None
        folder = self.archive_root / DERIVED / call_id
        target = folder / f"{row['name']}-{row['sha256'][:16]}.{row['format']}"
        if await asyncio.to_thread(target.is_file):
            return target
        await asyncio.to_thread(folder.mkdir, 0o750, True, True)
        if await self.objects.copy_to(row["path"], target, row["sha256"]):
            return target
        log.error("recording.unservable", call_id=call_id, recording=row["name"],
                  detail="not in the object store with its SHA-256")  # fmt: skip
        return None

    def _sweep_scratch(self, using: str) -> None:
        """Remove the decrypted copies (and mixes) of calls unused for SCRATCH_KEEP_S; mark
        `using`'s as used now. Blocking."""
        folder = self.derived_root / DERIVED
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            os.utime(folder / using)
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > SCRATCH_KEEP_S:
                        shutil.rmtree(entry.path, ignore_errors=True)

    async def _plain_copy(self, call_id: str, row: Any) -> Path | None:
        """An encrypted recording, decrypted beside the call's other derived files (in this
        process's private directory)."""
        target = self.derived_root / DERIVED / call_id / \
            f"{row['name']}-{row['sha256'][:16]}.{row['format']}"  # fmt: skip
        if await asyncio.to_thread(target.is_file):
            return target
        try:
            key = self._data_key(call_id, row["name"], row)
            chunks = [c async for c in self.plaintext(row["path"], key, 0, None)]
        except (ApiError, FileNotFoundError):
            return None  # logged; the page shows the recording without its audio

        def write() -> None:
            target.parent.mkdir(0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.writelines(chunks)
            os.replace(tmp, target)

        await asyncio.to_thread(write)
        return target

    def _data_key(self, call_id: str, name: str, row: Any) -> DataKey | None:
        """The data key of a recording whose row carries recording_keys' key_id and
        wrapped_key (None when it is not encrypted); ApiError 503 when it cannot be had."""
        if row["key_id"] is None:
            return None
        if self.keys is None:
            problem = "it is encrypted, and storage.encryption is not configured here"
        else:
            try:
                wrapped = WrappedKey(row["key_id"], bytes(row["wrapped_key"]))
                return self.keys.keyring.data_key(wrapped, call_id, name)
            except CryptError as exc:
                problem = str(exc)
        log.error("recording.undecryptable", call_id=call_id, recording=name, error=problem)
        raise ApiError(503, "recording_undecryptable",
                       f"recording {name} cannot be decrypted: {problem}",
                       {"call_id": call_id, "name": name})  # fmt: skip

    async def plaintext(
        self, stored: str, key: DataKey | None, start: int, stop: int | None
    ) -> AsyncGenerator[bytes, None]:
        """Plaintext bytes [start, stop) of the encrypted recording at `stored` (a real path
        in the archive or an object key), decrypted from its beginning. FileNotFoundError when
        it is gone; ApiError when it does not decrypt."""
        assert key is not None
        if stored.startswith(SCHEME):
            assert self.objects is not None
            source: Any = io.BytesIO(b"".join([c async for c in self.objects.read(stored)]))
        else:
            source = await asyncio.to_thread(open, stored, "rb")
        try:
            parts = key.plain_range(source, start, stop)
            while chunk := await asyncio.to_thread(next, parts, b""):
                yield chunk
        except CryptError as exc:
            log.error("recording.undecryptable", path=stored, error=str(exc))
            raise ApiError(503, "recording_undecryptable", f"the recording cannot be "
                           f"decrypted: {exc}", {}) from None  # fmt: skip
        finally:
            source.close()

    async def audio_file(
        self, principal: Principal, call_id: str, name: str, action: str, origin: Origin
    ) -> AudioFile:
        """The recording's file, if the call is in scope and the file is in the archive."""
        args = Params()
        sql = (
            "SELECT r.asterisk_id, r.name, r.format, r.status, r.path, r.bytes, k.key_id, "  # noqa: S608
            "k.wrapped_key FROM recordings r JOIN calls c ON c.call_id = r.call_id "
            "LEFT JOIN recording_keys k ON k.call_id = r.call_id AND k.name = r.name "
            f"WHERE r.call_id = {args.add(call_id)} AND r.name = {args.add(name)} "
            f"AND {call_scope(principal, args)}"
        )
        rec = await self.pool.fetchrow(sql, *args.values)
        if rec is None:
            await self._denied(principal, action, origin, call_id, name)
            raise not_found("recording", call_id=call_id, name=name)
        if rec["status"] != "filed" or rec["path"] is None:
            raise ApiError(
                404,
                "recording_not_filed",
                f"recording {name} has no file in the archive (status {rec['status']})",
                {"call_id": call_id, "name": name, "status": rec["status"]},
            )
        stored = rec["path"]
        sealed = self._data_key(call_id, name, rec)
        if stored.startswith(SCHEME) and self.objects is not None and self.objects.owns(stored):
            # Moved to the object store (a missing object is a 404 when it is read).
            return AudioFile(call_id, rec["asterisk_id"], rec["name"], rec["format"], None,
                             stored, sealed, rec["bytes"])  # fmt: skip
        real = None if stored.startswith(SCHEME) else \
            await asyncio.to_thread(_inside_archive, self.archive_root, stored)  # fmt: skip
        if real is None:
            # The database names a file we will not serve: gone, outside the archive, or in
            # an object store this server is not configured for.
            log.error("recording.unservable", call_id=call_id, recording=name)
            raise ApiError(
                404,
                "recording_file_missing",
                f"the file of recording {name} is not in the archive",
                {"call_id": call_id, "name": name},
            )
        return AudioFile(call_id, rec["asterisk_id"], rec["name"], rec["format"], real,
                         None, sealed, rec["bytes"])  # fmt: skip

    async def _denied(
        self, principal: Principal, action: str, origin: Origin, call_id: str,
        name: str | None = None,
    ) -> None:
        """Attempts on calls that do not exist or are out of scope are logged too: someone
        probing for calls is what an auditor wants to see. (The answer is the same 404.)"""
        await self.access_log.record(
            principal, action, origin, call_id=call_id[:200], recording_name=name and name[:200],
            detail={"denied": "not_found"},
        )  # fmt: skip

    async def _consent(self, call_id: str) -> list[dict[str, Any]] | None:
        """Rows of consent_audit (the consent feature's table) for the call; None where that
        table does not exist (yet) or has no call_id column."""
        if self._consent_sql is False:
            columns = {
                r["column_name"]
                for r in await self.pool.fetch(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'consent_audit'"
                )
            }
            order = next((c for c in ("id", "started_at") if c in columns), "call_id")
            self._consent_sql = (
                "SELECT to_jsonb(a) AS row FROM consent_audit a WHERE a.call_id = $1 "  # noqa: S608
                f"ORDER BY a.{order}"
                if "call_id" in columns
                else None
            )
        if not isinstance(self._consent_sql, str):
            return None
        try:
            rows = await self.pool.fetch(self._consent_sql, call_id)
        except asyncpg.UndefinedTableError:
            self._consent_sql = False  # dropped or renamed since: look again next time
            return None
        return [r["row"] for r in rows]
