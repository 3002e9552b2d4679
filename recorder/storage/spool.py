"""Classify files left in the recording spool (after a crash, or by the dialplan fallback).

Only names we recognise are ever acted on; everything else comes back as UnknownFile for the
caller to log, and is never touched. Symlinks and directories are unknown too: the spool is
written by Asterisk, and nothing outside it may be pulled into the archive.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# The daemon's own recordings: "<call_id>-s<segment>.<fmt>", e.g. 20261125T191425-3fa9c2d1-s1.wav
CALL_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")
_OWN = re.compile(
    r"^(?P<call_id>\d{8}T\d{6}-[0-9a-f]{8})-s(?P<segment>\d{1,6})\.(?P<fmt>[A-Za-z0-9]{1,16})$"
)
# The dialplan's fail-closed MixMonitor fallback:
# "fallback-<epoch>-<uniqueid>-<direction>-<from>-<to>.<fmt>", from/to digits and '+', maybe empty.
_FALLBACK = re.compile(
    r"^fallback-(?P<epoch>\d{1,12})-(?P<uniqueid>\d{1,12}\.\d{1,9})"
    r"-(?P<direction>inbound|outbound|internal)-(?P<src>[0-9+]{0,32})-(?P<dst>[0-9+]{0,32})"
    r"\.(?P<fmt>[A-Za-z0-9]{1,16})$"
)


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    size: int
    mtime: datetime  # UTC; a recent mtime may mean Asterisk is still writing the file


@dataclass(frozen=True)
class OwnRecording(SpoolFile):
    call_id: str
    segment: int
    fmt: str

    @property
    def name(self) -> str:
        """The ARI recording name (the file name without its extension)."""
        return f"{self.call_id}-s{self.segment}"


@dataclass(frozen=True)
class FallbackRecording(SpoolFile):
    started_at: datetime  # from the epoch in the name, UTC
    uniqueid: str  # the Asterisk channel's uniqueid, e.g. "1795631195.79"
    direction: str  # inbound | outbound | internal
    from_number: str | None
    to_number: str | None
    fmt: str

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class UnknownFile(SpoolFile):
    reason: str


SpoolEntry = OwnRecording | FallbackRecording | UnknownFile


def classify(path: Path, size: int = 0, mtime: datetime | None = None) -> SpoolEntry:
    """Classify one spool file by its name alone."""
    mtime = mtime or datetime.fromtimestamp(0, UTC)
    name = path.name
    if m := _OWN.match(name):
        return OwnRecording(path, size, mtime, m["call_id"], int(m["segment"]), m["fmt"])
    if m := _FALLBACK.match(name):
        try:
            started = datetime.fromtimestamp(int(m["epoch"]), UTC)
        except (OverflowError, OSError, ValueError):
            return UnknownFile(path, size, mtime, "fallback name with an impossible epoch")
        return FallbackRecording(
            path, size, mtime, started, m["uniqueid"], m["direction"],
            m["src"] or None, m["dst"] or None, m["fmt"],
        )  # fmt: skip
    return UnknownFile(path, size, mtime, "name matches no recording pattern")


def scan(spool_dir: Path) -> list[SpoolEntry]:
    """Every entry directly in `spool_dir`, sorted by name. Blocking (use asyncio.to_thread)."""
    entries: list[SpoolEntry] = []
    with os.scandir(spool_dir) as it:
        for e in it:
            path = Path(e.path)
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we looked (e.g. filed by another task)
            mtime = datetime.fromtimestamp(st.st_mtime, UTC)
            if stat.S_ISLNK(st.st_mode):
                entries.append(UnknownFile(path, 0, mtime, "symbolic link"))
            elif not stat.S_ISREG(st.st_mode):
                entries.append(UnknownFile(path, 0, mtime, "not a regular file"))
            else:
                entries.append(classify(path, st.st_size, mtime))
    return sorted(entries, key=lambda x: x.path.name)
