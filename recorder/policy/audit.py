"""The consent audit: one ConsentRow per party and announcement (migration 0003_consent).

`consent_row` builds a row from the policy's answers (pure); `add_consent_rows` and
`consent_rows` write and read them with asyncpg. The table is append-only: the row is written
once the announcement has finished or was interrupted, with what the party pressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final, Literal

from recorder.policy.announce import Announcement
from recorder.policy.jurisdiction import Jurisdiction
from recorder.policy.model import Mode
from recorder.policy.rules import Decision

Played = Literal["finished", "interrupted", "none"]


@dataclass(frozen=True)
class ConsentRow:
    call_id: str
    asterisk_id: str
    channel_id: str
    party: str  # caller, callee, target1, ...
    number: str | None
    e164: str | None
    region: str | None
    state: str | None
    jurisdiction_source: str  # override | extension | geocoder | region | default
    jurisdiction_detail: str
    mode: str  # the party's own law: all-party | one-party
    governing_mode: str  # the strictest among the parties present then
    rule: str  # what decided, e.g. "rule 'Litigation'" or "do_not_record 'Court'"
    action: str  # force | yes | no | never
    recorded: bool
    retention: str
    announcement: str | None  # before-bridge | on-answer | on-join; None when none was due
    prompt: str | None  # prompt id (file name without .wav)
    prompt_sha256: str | None
    language: str | None
    started_at: datetime | None
    ended_at: datetime | None
    played: str  # finished | interrupted | none
    dtmf: str | None  # keys pressed during the announcement
    opted_out: bool = False


COLUMNS: Final = [f.name for f in fields(ConsentRow)]
_INSERT: Final = (
    f"INSERT INTO consent_audit ({', '.join(COLUMNS)}, row_key) "  # noqa: S608 - our own
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 2))}) "
    "ON CONFLICT (row_key) DO NOTHING"  # replayed from the daemon's journal: written once
)
_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM consent_audit WHERE call_id = $1 ORDER BY id"  # noqa: S608


def consent_row(
    *,
    call_id: str,
    asterisk_id: str,
    channel_id: str,
    party: str,
    jurisdiction: Jurisdiction,
    governing_mode: Mode,
    decision: Decision,
    announcement: Announcement | None = None,
    prompt_sha256: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    played: Played = "none",
    dtmf: str | None = None,
    opted_out: bool = False,
) -> ConsentRow:
    """A row for `party` from what policy said about it and what happened while it listened."""
    if (announcement is None) != (played == "none"):
        raise ValueError("played must be 'none' exactly when there was no announcement")
    j, a = jurisdiction, announcement
    return ConsentRow(
        call_id=call_id,
        asterisk_id=asterisk_id,
        channel_id=channel_id,
        party=party,
        number=j.subject,
        e164=j.e164,
        region=j.region,
        state=j.state,
        jurisdiction_source=j.source,
        jurisdiction_detail=j.detail,
        mode=j.mode,
        governing_mode=governing_mode,
        rule=", ".join(decision.decided_by),
        action=decision.action,
        recorded=decision.record,
        retention=decision.retention,
        announcement=a.when if a else None,
        prompt=a.prompt if a else None,
        prompt_sha256=prompt_sha256,
        language=a.language if a else None,
        started_at=started_at,
        ended_at=ended_at,
        played=played,
        dtmf=dtmf,
        opted_out=opted_out,
    )


def _values(row: ConsentRow) -> list[Any]:
    values = [getattr(row, c) for c in COLUMNS]
    for c, v in zip(COLUMNS, values, strict=True):
        if isinstance(v, datetime) and v.utcoffset() is None:
            raise ValueError(f"ConsentRow.{c} is a naive datetime: {v!r}")
    return values


async def add_consent_rows(pool_or_conn: Any, rows: Sequence[ConsentRow],
                           keys: Sequence[str | None] | None = None) -> None:
    """Insert `rows` (all or none). `pool_or_conn`: an asyncpg pool or connection; `keys`: each
    row's key, so that writing it again adds nothing (None: no key)."""
    if not rows:
        return
    args = _args(rows, keys)  # a naive time is refused before the database is used
    if hasattr(pool_or_conn, "acquire"):
        async with pool_or_conn.acquire() as conn, conn.transaction():
            await conn.executemany(_INSERT, args)
    else:
        async with pool_or_conn.transaction():
            await pool_or_conn.executemany(_INSERT, args)


async def insert_consent_rows(conn: Any, rows: Sequence[ConsentRow],
                              keys: Sequence[str | None] | None = None) -> None:
    """`add_consent_rows` in the caller's transaction on `conn` (the daemon writer's flush)."""
    await conn.executemany(_INSERT, _args(rows, keys))


def _args(rows: Sequence[ConsentRow], keys: Sequence[str | None] | None) -> list[tuple[Any, ...]]:
    keys = keys or [None] * len(rows)
    return [(*_values(r), k) for r, k in zip(rows, keys, strict=True)]


async def consent_rows(pool_or_conn: Any, call_id: str) -> list[ConsentRow]:
    """A call's consent rows in the order they were written."""
    return [ConsentRow(**dict(r.items())) for r in await pool_or_conn.fetch(_SELECT, call_id)]
