"""The daemon's write-ahead journal: rows PostgreSQL has not taken yet, on local disk.

Every row the call model produced is appended here and fsync'd before Asterisk hears of anything
it names (recorder.service.writer), and waits in memory until PostgreSQL takes it, in the background
(or, while PostgreSQL is away, when it is back). A daemon killed (kill -9, OOM, power cut)
replays the journal at its next start: the calls it was recording are adopted from their newest
snapshots, never taken for new calls, and every row reaches PostgreSQL once (rows carry the key
they were given when staged; a replayed row PostgreSQL already has is skipped). The journal is
emptied once the database has everything, and rewritten with what is pending as it grows.

One JSON object per line: {"t": "state" | "call" | "event" | "gap" | "consent" | "tag", "k": key,
"r": row}. A call is journaled as its snapshot ("state": the call model's, as `calls.state` keeps
it; its rows are mapped from it at replay), or, staged as rows (a fallback recording's, or kept
from a replay), as its rows ("call"; every call in lines of older daemons). Lines of older
daemons still: "v", datetimes tagged; all are read.
A torn last line (a crash mid-write) is skipped and logged. The file is bounded (`max_bytes`):
past 80 % a warning, past the bound an error and rows wait in memory only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import structlog

from recorder.db.rows import CallRow, CallRows, EventRow, GapRow, LegRow, RecordingRow
from recorder.policy.audit import ConsentRow

log = structlog.get_logger("verbatim.journal")

FILE = "journal.jsonl"


@dataclass(frozen=True)
class Entry:
    kind: str  # state | call | event | gap | consent | tag
    key: str  # the row's key (a call's snapshot: its call id; a tag's: call id + tag)
    # state: the call's snapshot (msgspec.Raw written, a dict read) | call: CallRows |
    # EventRow | GapRow | ConsentRow | (call_id, tag, by)
    row: Any


# How lines of daemons before this one held a row ("v"): datetimes as {"$journal-dt": iso}. Not
# "$dt": a call's state (CallRow.state) carries that marker in its own JSON, to be stored as is.
_DT = "$journal-dt"

# Rows are encoded by msgspec from their dataclasses ("r"): datetimes as RFC 3339 strings.
_ENCODER = msgspec.json.Encoder()
_ROW_TYPES: dict[str, type[Any]] = {"event": EventRow, "gap": GapRow, "consent": ConsentRow}


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DT in obj:
        return datetime.fromisoformat(obj[_DT])
    return obj


def _times(cls: type[Any]) -> frozenset[str]:
    """The row type's datetime fields (annotations are strings here: `datetime | None`)."""
    return frozenset(f.name for f in fields(cls) if "datetime" in str(f.type))


_TIMES = {cls: _times(cls) for cls in (CallRow, LegRow, RecordingRow, EventRow, GapRow,
                                       ConsentRow)}
_NAMES = {cls: frozenset(f.name for f in fields(cls)) for cls in _TIMES}


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    """The row from its fields as read, unchecked (PostgreSQL checks them when it takes the
    row: a line must not be dropped at replay for a type the database would accept)."""
    names, times = _NAMES[cls], _TIMES[cls]
    return cls(**{k: datetime.fromisoformat(v) if k in times and isinstance(v, str) else v
                  for k, v in data.items() if k in names})


def encode(entry: Entry) -> bytes:
    """The entry as one journal line (without its newline)."""
    row = entry.row
    return _ENCODER.encode({"t": entry.kind, "k": entry.key,
                            "r": list(row) if isinstance(row, tuple) else row})


def lines(entries: Iterable[Entry]) -> bytes:
    """Entries as the journal's lines."""
    return b"".join(encode(e) + b"\n" for e in entries)


def decode(line: str | bytes) -> Entry:
    """One journal line as the entry it was (ValueError, KeyError or TypeError if it is not)."""
    if isinstance(line, bytes):
        line = line.decode()
    data = json.loads(line)
    # "v": an older daemon's line, its datetimes tagged
    value = data["r"] if "r" in data else json.loads(line, object_hook=_hook)["v"]
    kind, key = data["t"], str(data["k"])
    if kind == "state":
        if not isinstance(value, dict):
            raise ValueError(f"a call's snapshot is an object, not a {type(value).__name__}")
        row: Any = value
    elif kind == "call":
        call = _build(CallRow, value["call"])
        row = CallRows(call.call_id, call,
                       tuple(_build(LegRow, x) for x in value["legs"]),
                       tuple(_build(RecordingRow, x) for x in value["recordings"]))
    elif kind in _ROW_TYPES:
        row = _build(_ROW_TYPES[kind], value)
    elif kind == "tag":
        call_id, tag, by = value
        row = (str(call_id), str(tag), str(by))
    else:
        raise ValueError(f"unknown entry kind {kind!r}")
    return Entry(kind, key, row)


class Journal:
    """The journal file, kept open between appends (one write and one fdatasync per append:
    no open, stat or close per batch); emptied by truncation, so the file and its name stay."""

    def __init__(self, directory: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = directory / FILE
        self.max_bytes = max_bytes
        self.full = False  # it refused a write for want of room: rows wait in memory only
        self._warned = False
        self._fd: int | None = None
        self._size = 0  # the file's size while it is open

    @property
    def size(self) -> int:
        if self._fd is not None:
            return self._size
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _open(self) -> int:
        if self._fd is None:
            fresh = not self.path.exists()
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if fresh:  # the new name itself must survive a power cut
                    _fsync_dir(self.path.parent)
                self._size = os.fstat(fd).st_size
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def append(self, entries: Iterable[Entry]) -> bool:
        """Append and fsync; False if the journal is full or cannot be written (logged). Once
        full it takes nothing more (rows then wait in memory only) until it is rewritten."""
        return self.write(lines(entries))

    def write(self, data: bytes) -> bool:
        """`append` of entries already encoded (`lines`): the writer encodes on its event loop,
        so this thread holds the GIL only between the write and the fdatasync."""
        if self.full:
            return False
        if not data:
            return True
        size = self.size
        if size + len(data) > self.max_bytes:
            self.full = True
            log.error("journal.full", path=str(self.path), bytes=size, max_bytes=self.max_bytes,
                      action="rows wait in memory only until PostgreSQL takes them")
            return False
        try:
            fd = self._open()
            written = os.write(fd, data)
            self._size += written
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            os.fdatasync(fd)  # the data and the file's new size: all a replay reads
        except OSError as exc:
            self.close()  # reopened (and its size read again) at the next append
            log.error("journal.write_failed", path=str(self.path), error=str(exc))
            return False
        if not self._warned and size + len(data) > self.max_bytes * 0.8:
            self._warned = True
            log.warning("journal.filling", path=str(self.path), bytes=size + len(data),
                        max_bytes=self.max_bytes)
        return True

    def read(self) -> list[Entry]:
        try:
            text = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for n, line in enumerate(text, 1):
            try:
                entries.append(decode(line))
            except (ValueError, KeyError, TypeError) as exc:  # a torn line: the crash's own
                log.warning("journal.line_skipped", path=str(self.path), line=n, error=str(exc))
        return entries

    def clear(self) -> None:
        """PostgreSQL has every row: start afresh (the file is truncated, not removed: the
        next append needs no new name made durable)."""
        self.full = self._warned = False
        if self._fd is None:
            if not self.path.exists():
                return
            self._open()
        assert self._fd is not None
        if self._size:
            # No fdatasync: until the next append's, a crash may leave the old lines, which
            # PostgreSQL has (the journal is never behind it) and a replay writes once; that
            # fdatasync makes the new size, and so the truncation, durable with its lines.
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                self.close()
                raise
            self._size = 0

    def rewrite(self, entries: list[Entry]) -> None:
        """PostgreSQL took part of what the journal held: replace it, atomically, by `entries`
        (what is still pending), so no row it took is replayed, older snapshots included."""
        if not entries:
            self.clear()
            return
        temp = self.path.with_name(self.path.name + ".new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                data = lines(entries)
                written = os.write(fd, data)
                if written != len(data):  # a full disk: never put a truncated file in place
                    raise OSError(f"short write: {written} of {len(data)} bytes")
                os.fsync(fd)
            finally:
                os.close(fd)
            self.close()  # appends go to the new file
            os.replace(temp, self.path)
        except BaseException:  # a full disk must not also keep the half-written copy
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_dir(self.path.parent)
        self.full = self._warned = False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
