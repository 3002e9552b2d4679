"""Query-string parsing shared by the search and access-log endpoints: strict, and every
refusal is a 400 naming the parameter and its value.

Unknown or repeated parameters are errors rather than ignored: a misspelt filter ("extention")
silently ignored would widen a search without anyone noticing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from recorder.api.errors import invalid

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
_INT = re.compile(r"^[0-9]{1,9}$")
# Control characters (PostgreSQL's text cannot hold a NUL) and lone surrogates (how aiohttp
# decodes bytes of a header that were not UTF-8; asyncpg cannot encode them).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# What PostgreSQL's timestamptz and asyncpg's encoder take, as UTC years: the same bounds as
# `when`, so a time in a hand-made cursor is refused like one in `from`.
_YEARS = range(1970, 9999)
_BIGINT = range(-(2**63), 2**63)


def printable(value: str) -> bool:
    """Whether `value` is text we may keep or compare: UTF-8 (no surrogates), no controls."""
    return not _UNPRINTABLE.search(value)


class Query(Protocol):
    """What aiohttp's request.query offers (a multidict)."""

    def getall(self, key: str, default: list[str]) -> list[str]: ...

    def __iter__(self) -> Iterator[str]: ...


def reject_unknown(query: Query, known: Iterable[str]) -> None:
    allowed = set(known)
    for key in query:
        if key not in allowed:
            raise invalid(key, f"unknown parameter; known: {', '.join(sorted(allowed))}")


def single(query: Query, name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise invalid(name, "given more than once")
    return values[0] if values else None


def text(query: Query, name: str, max_len: int = 100, pattern: str | None = None) -> str | None:
    value = single(query, name)
    if value is None:
        return None
    if not value or len(value) > max_len or not printable(value):
        raise invalid(name, f"must be 1 to {max_len} printable characters", value)
    if pattern is not None and not re.fullmatch(pattern, value):
        raise invalid(name, f"must match {pattern}", value)
    return value


def choice(query: Query, name: str, choices: Iterable[str]) -> str | None:
    value = single(query, name)
    options = tuple(choices)
    if value is not None and value not in options:
        raise invalid(name, f"must be one of {', '.join(options)}", value)
    return value


def integer(query: Query, name: str, low: int, high: int) -> int | None:
    value = single(query, name)
    if value is None:
        return None
    if not _INT.fullmatch(value) or not low <= int(value) <= high:
        raise invalid(name, f"must be a whole number from {low} to {high}", value)
    return int(value)


def limit(query: Query) -> int:
    found = integer(query, "limit", 1, MAX_LIMIT)
    return DEFAULT_LIMIT if found is None else found


def when(query: Query, name: str, *, end: bool = False) -> datetime | None:
    """An ISO 8601 date or date-time. A date means that day in UTC: the start of it, or, for an
    end bound (`end`), the start of the next day, so `to=2026-03-01` includes all of March 1st.
    A date-time without an offset is taken as UTC."""
    value = single(query, name)
    if value is None:
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            day = date.fromisoformat(value)
            found = datetime.combine(day, time(), UTC) + (timedelta(days=1) if end else timedelta())
        else:
            found = datetime.fromisoformat(value)
            found = found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(
            name, "must be a date (2026-03-01) or date-time (2026-03-01T09:30:00+01:00)", value
        ) from None
    if found.year not in _YEARS:
        raise invalid(name, "must be between 1970 and 9998", value)
    return found


def date_range(query: Query) -> tuple[datetime | None, datetime | None]:
    start, stop = when(query, "from"), when(query, "to", end=True)
    if start is not None and stop is not None and stop <= start:
        raise invalid("to", "must be after from", single(query, "to"))
    return start, stop


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(query: Query, kinds: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The values of an opaque `cursor` (as given to encode_cursor), checked against `kinds`
    and against what the database can take (a cursor can be made by hand)."""
    value = single(query, "cursor")
    if value is None:
        return None
    try:
        if len(value) > 400:
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("wrong shape")
        return tuple(_cursor_value(item, kind) for item, kind in zip(raw, kinds, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise invalid("cursor", "is not a cursor this API handed out", value) from None


def _cursor_value(item: Any, kind: type) -> Any:
    if kind is datetime:
        found = datetime.fromisoformat(item)
        if found.tzinfo is None:
            raise ValueError("naive time")
        if found.astimezone(UTC).year not in _YEARS:  # OverflowError near year 1 or 9999
            raise ValueError("time out of range")
        return found
    if not isinstance(item, kind) or isinstance(item, bool):
        raise ValueError("wrong type")
    if isinstance(item, str) and (len(item) > 200 or not printable(item)):
        raise ValueError("unprintable text")
    if isinstance(item, int) and item not in _BIGINT:
        raise ValueError("integer out of range")
    return item
