"""Recordings' wrapped data keys in PostgreSQL (table recording_keys, migration 0010), and
`verbatim keys rotate`: every data key re-wrapped under the current master key.

The filer asks for a recording's key before it writes the file, and the key's row is committed
by then: a file is never placed whose key a crash could lose. Asked again for the same recording
(a filing retried after a crash), it gets the same key back, so whatever file a previous attempt
placed still decrypts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import asyncpg
import structlog

from recorder.config import Config
from recorder.keeping import custody
from recorder.storage.crypt import CryptError, DataKey, Keyring, WrappedKey, keyring_for

log = structlog.get_logger("verbatim.keys")

_GET: Final = "SELECT key_id, wrapped_key FROM recording_keys WHERE call_id = $1 AND name = $2"
_CREATE: Final = """
    INSERT INTO recording_keys (call_id, name, key_id, wrapped_key) VALUES ($1, $2, $3, $4)
    ON CONFLICT (call_id, name) DO NOTHING
"""
_STORED: Final = """
    UPDATE recording_keys SET stored_sha256 = $3, stored_bytes = $4
    WHERE call_id = $1 AND name = $2
"""
# Keyset pagination in key order, so a rotation resumed after a crash skips what is done.
# detail: the custody event's, as PostgreSQL prints it (custody.append_many hashes that text).
_TO_REWRAP: Final = """
    SELECT k.call_id, k.name, k.key_id, k.wrapped_key, r.asterisk_id, r.sha256,
           jsonb_build_object('from', k.key_id, 'to', $1::text)::text AS detail
    FROM recording_keys k LEFT JOIN recordings r ON r.call_id = k.call_id AND r.name = k.name
    WHERE k.key_id <> $1 AND (k.call_id, k.name) > ($2, $3)
    ORDER BY k.call_id, k.name LIMIT $4
"""
# Only where the row is still what was read: another run's re-wrap is not re-done.
_REWRAP: Final = """
    UPDATE recording_keys k SET key_id = $1, wrapped_key = w.wrapped,
                                rekeyed_at = clock_timestamp()
    FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::bytea[])
         AS w(call_id, name, wrapped, old_id, old_wrapped)
    WHERE k.call_id = w.call_id AND k.name = w.name AND k.key_id = w.old_id
      AND k.wrapped_key = w.old_wrapped
    RETURNING k.call_id, k.name
"""


def open_keyring(config: Config) -> Keyring | None:
    """storage.encryption's master keys, read at start; a key that cannot be read stops the
    program with what is wrong and where (never the key). None: encryption is off."""
    try:
        return keyring_for(config.storage.encryption)
    except CryptError as exc:
        raise SystemExit(f"storage.encryption: {exc}") from None


async def check_keyring(pool: Any, keyring: Keyring) -> None:
    """CryptError unless each configured master key unwraps a data key stored under its id
    (when there is one): a different key given the same key_id would otherwise wrap new
    recordings' keys beside old ones it cannot open."""
    for key_id in keyring.key_ids:
        row = await pool.fetchrow("SELECT call_id, name, wrapped_key FROM recording_keys "
                                  "WHERE key_id = $1 LIMIT 1", key_id)  # fmt: skip
        if row is not None:
            keyring.data_key(WrappedKey(key_id, bytes(row["wrapped_key"])), row["call_id"],
                             row["name"])  # fmt: skip


T = TypeVar("T")
# How long filing waits for PostgreSQL to store or read a recording's key, retrying
WAIT_S: Final = 300.0


class RecordingKeys:
    def __init__(self, pool: Any, keyring: Keyring) -> None:
        self.pool = pool
        self.keyring = keyring

    async def wrapped(self, call_id: str, name: str) -> WrappedKey | None:
        row = await self.pool.fetchrow(_GET, call_id, name)
        return None if row is None else WrappedKey(row["key_id"], bytes(row["wrapped_key"]))

    async def for_filing(self, call_id: str, name: str, wait_s: float = WAIT_S) -> DataKey:
        """The recording's data key: the one it has, or a new one, stored before returning.
        While PostgreSQL is away it retries (`_patiently`): the file waits in the spool
        meanwhile, as no file may be placed whose key is not stored."""
        return await self._patiently(lambda: self._for_filing(call_id, name), call_id, name,
                                     "the recording waits in the spool; retrying", wait_s)

    async def _patiently(self, attempt: Callable[[], Awaitable[T]], call_id: str, name: str,
                         action: str, wait_s: float = WAIT_S) -> T:  # fmt: skip
        """`attempt()`, tried again while PostgreSQL is away (1 s, 2 s, 4 s … for up to
        `wait_s`; said once): filing must not call a recording missing for a blip."""
        delay, waited = 1.0, 0.0
        while True:
            try:
                return await attempt()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                if waited >= wait_s:
                    raise
                if waited == 0:
                    log.warning("keys.database_away", call_id=call_id, recording=name,
                                error=f"{type(exc).__name__}: {exc}", action=action)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 30.0)

    async def _for_filing(self, call_id: str, name: str) -> DataKey:
        found = await self.wrapped(call_id, name)
        if found is None:
            key, wrapped = self.keyring.new_data_key(call_id, name)
            await self.pool.execute(_CREATE, call_id, name, wrapped.key_id, wrapped.wrapped)
            found = await self.wrapped(call_id, name)  # another filer's, if it won the race
            if found == wrapped:
                return key
            assert found is not None
        return self.keyring.data_key(found, call_id, name)

    async def for_reading(self, call_id: str, name: str) -> DataKey | None:
        """The recording's data key; None when it is not encrypted (filed without). Filing
        asks it of a recording found filed already: retried as `for_filing` is."""
        found = await self._patiently(lambda: self.wrapped(call_id, name), call_id, name,
                                      "retrying")  # fmt: skip
        return None if found is None else self.keyring.data_key(found, call_id, name)

    async def placed(self, call_id: str, name: str, sha256: str, size: int) -> None:
        """The ciphertext's hash and size, once its file is in the archive (and the spool's
        copy gone: a blip must not leave the recording reported missing)."""
        await self._patiently(lambda: self.pool.execute(_STORED, call_id, name, sha256, size),
                              call_id, name, "the recording is in the archive; retrying")


@dataclass
class Rotation:
    rewrapped: int = 0
    batches: int = 0


async def rotate(pool: Any, keyring: Keyring, *, batch: int = 500) -> Rotation:
    """Re-wrap every data key not wrapped by the current master key, in batches of `batch`,
    each one transaction (one UPDATE, and a 're-keyed' custody event per recording appended to
    its office's chain at once). Safe to stop anywhere: a batch is all or nothing, and a run
    re-wraps only what is left. Raises CryptError (nothing of that batch changed) for a key no
    configured master unwraps."""
    done = Rotation()
    after = ("", "")
    target = keyring.current.key_id
    while True:
        rows = await pool.fetch(_TO_REWRAP, target, *after, batch)
        if not rows:
            return done
        new = [keyring.rewrap(WrappedKey(r["key_id"], bytes(r["wrapped_key"])), r["call_id"],
                              r["name"]).wrapped for r in rows]  # fmt: skip
        async with pool.acquire() as conn, conn.transaction():
            changed = {(c["call_id"], c["name"]) for c in await conn.fetch(
                _REWRAP, target, [r["call_id"] for r in rows], [r["name"] for r in rows], new,
                [r["key_id"] for r in rows], [r["wrapped_key"] for r in rows])}  # fmt: skip
            done.rewrapped += len(changed)
            events: dict[str, list[dict[str, Any]]] = {}
            for r in rows:  # a key whose recording row was never written joins no chain
                if (r["call_id"], r["name"]) in changed and r["asterisk_id"] is not None:
                    events.setdefault(r["asterisk_id"], []).append({
                        "kind": "re-keyed", "call_id": r["call_id"],
                        "asterisk_id": r["asterisk_id"], "recording_name": r["name"],
                        "subject_sha256": r["sha256"], "detail": r["detail"]})  # fmt: skip
            for office, chained in sorted(events.items()):
                await custody.append_many(conn, office, chained)
        done.batches += 1
        log.info("keys.rotated_batch", rewrapped=done.rewrapped, to=target)
        after = (rows[-1]["call_id"], rows[-1]["name"])
