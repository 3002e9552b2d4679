"""The custody chain (migration 0006): appending events, and each row's hash recomputed here,
independently of the database, for `verify`.

Row hash = sha256(prev || f(chain) f(seq) f(at) f(kind) f(call_id) f(asterisk_id)
f(recording_name) f(hold_id) f(access_id) f(subject_sha256) f(detail as text)), f(None) = "-",
f(v) = "<UTF-8 length>:<v>" (so no two different rows encode alike), `at` in UTC to the
microsecond. The database's custody_append computes the same when a row is written.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Final

FIRM: Final = "*"  # the chain of firm-wide events (legal holds); offices use their asterisk_id
GENESIS: Final = "0" * 64  # the "previous hash" of a chain's first row


def field(value: object) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else stamp(value) if isinstance(value, datetime) \
        else str(value)  # fmt: skip
    return f"{len(text.encode())}:{text}"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def row_hash(prev: str, row: Any) -> str:
    """`row`: a custody row with `detail` as its text (detail::text)."""
    parts = (row["chain"], row["seq"], row["at"], row["kind"], row["call_id"],
             row["asterisk_id"], row["recording_name"], row["hold_id"], row["access_id"],
             row["subject_sha256"], row["detail"])  # fmt: skip
    return _sha(prev + "".join(field(p) for p in parts))


ACCESS_FIELDS: Final = ("id", "at", "user_name", "role", "via", "action", "call_id",
                        "asterisk_id", "recording_name", "detail", "remote", "user_agent")


def access_digest(row: Any) -> str:
    """An access_log row (detail as text), as the play/download custody row vouches for it."""
    return _sha("".join(field(row[name]) for name in ACCESS_FIELDS))


_INSERT_MANY = """
    INSERT INTO custody (chain, seq, at, kind, call_id, asterisk_id, recording_name,
                         subject_sha256, detail, prev_sha256, sha256)
    SELECT $1, seq, $2, kind, call_id, asterisk_id, recording_name, subject, detail::jsonb, prev,
           hash
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[])
         AS e(seq, kind, call_id, asterisk_id, recording_name, subject, detail, prev, hash)
"""


async def append_many(conn: Any, chain: str, events: list[dict[str, Any]]) -> None:
    """Append `events` (kind, call_id, asterisk_id, recording_name, subject_sha256, and detail
    as PostgreSQL prints it: jsonb::text) to `chain` in `conn`'s transaction: the head locked
    and moved once, the hashes computed here, one INSERT. A purge appends a batch this way."""
    if not events:
        return
    await conn.execute("INSERT INTO custody_heads (chain, seq, sha256) VALUES ($1, 0, $2) "
                       "ON CONFLICT (chain) DO NOTHING", chain, GENESIS)  # fmt: skip
    head = await conn.fetchrow(
        "SELECT seq, sha256, clock_timestamp() AS at FROM custody_heads WHERE chain = $1 "
        "FOR UPDATE", chain)  # fmt: skip
    at = head["at"]
    seqs, prevs, hashes = [], [], []
    prev, seq = head["sha256"], head["seq"]
    for e in events:
        seq += 1
        row = {"chain": chain, "seq": seq, "at": at, "hold_id": None, "access_id": None, **e}
        seqs.append(seq)
        prevs.append(prev)
        prev = row_hash(prev, row)
        hashes.append(prev)
    columns = ("kind", "call_id", "asterisk_id", "recording_name", "subject_sha256", "detail")
    await conn.execute(_INSERT_MANY, chain, at, seqs,
                       *([e[c] for e in events] for c in columns), prevs, hashes)  # fmt: skip
    await conn.execute("UPDATE custody_heads SET seq = $2, sha256 = $3 WHERE chain = $1",
                       chain, seq, prev)  # fmt: skip


async def append(
    conn: Any, chain: str, kind: str, *, call_id: str | None = None,
    asterisk_id: str | None = None, recording_name: str | None = None,
    hold_id: int | None = None, subject_sha256: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """Append one event in `conn`'s transaction (the chain's head stays locked until it ends);
    returns its seq."""
    seq: int = await conn.fetchval(
        "SELECT custody_append($1, $2, $3, $4, $5, $6, NULL, $7, $8::jsonb)",
        chain, kind, call_id, asterisk_id, recording_name, hold_id, subject_sha256, detail or {},
    )  # fmt: skip
    return seq
