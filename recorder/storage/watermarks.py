"""Free-space watermarks on the spool and the archive (storage.low_free_mb, storage.min_free_mb).

`DiskWatch.check()` reads each directory's free space (statvfs) and logs what changed:
`disk.low` (warning) below the low mark, `disk.critical` (error, repeated every `repeat_s` while
it lasts) below the critical mark or when the space cannot be read, `disk.ok` when it is back
above the low mark. It keeps the levels for the metrics and for `refusal()`: with
`storage.on_critical: refuse_new`, no new recording is started while a directory is critical
(the daemon asks before a call's first recording; see Daemon._refusal). With `keep_recording`
recordings go on, loudly: Asterisk writes until the disk is full.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger("verbatim.storage")

OK: Final = "ok"
LOW: Final = "low"
CRITICAL: Final = "critical"
LEVELS: Final = (OK, LOW, CRITICAL)
MB: Final = 1024 * 1024


def level_of(free_mb: int | None, low_mb: int, critical_mb: int) -> str:
    """The level of a directory with `free_mb` free (None: unreadable, which is critical)."""
    if free_mb is None or free_mb < critical_mb:
        return CRITICAL
    return LOW if free_mb < low_mb else OK


@dataclass(frozen=True)
class DiskState:
    name: str  # spool | archive
    path: Path
    free_bytes: int | None  # available to unprivileged users; None if it cannot be read
    level: str
    error: str | None = None  # why free_bytes is None

    @property
    def free_mb(self) -> int | None:
        return None if self.free_bytes is None else self.free_bytes // MB


def read_free(name: str, path: Path) -> DiskState:
    """The directory's free space, level not yet judged (OK). A directory not made yet (the
    archive's, before the first filing) has the space of the nearest one above it."""
    where = path
    while not where.exists() and where.parent != where:
        where = where.parent
    try:
        st = os.statvfs(where)
    except OSError as exc:
        return DiskState(name, path, None, OK, f"cannot read free space of {path}: "
                         f"{exc.strerror or exc}")  # fmt: skip
    return DiskState(name, path, st.f_bavail * st.f_frsize, OK)


class DiskWatch:
    def __init__(self, dirs: dict[str, Path], low_mb: int, critical_mb: int,
                 refuse_new: bool = False, repeat_s: float = 60.0) -> None:  # fmt: skip
        self.dirs = dict(dirs)
        self.low_mb, self.critical_mb = low_mb, critical_mb
        self.refuse_new = refuse_new
        self.repeat_s = repeat_s
        self.states: dict[str, DiskState] = {}
        self.refused = 0  # recordings not started because of a critical directory
        self._last_alarm: dict[str, float] = {}

    def check(self, now: float | None = None) -> dict[str, DiskState]:
        """Read every directory, log the changes of level; the new states."""
        now = time.monotonic() if now is None else now
        for name, path in self.dirs.items():
            found = read_free(name, path)
            level = level_of(found.free_mb, self.low_mb, self.critical_mb)
            state = DiskState(name, path, found.free_bytes, level, found.error)
            self._alert(self.states.get(name), state, now)
            self.states[name] = state
        return dict(self.states)

    def refusal(self) -> str | None:
        """Why a new recording must not start now (refuse_new, a directory critical), counted
        as one refusal; None when it may."""
        if not self.refuse_new:
            return None
        critical = [s for s in self.states.values() if s.level == CRITICAL]
        if not critical:
            return None
        self.refused += 1
        return "; ".join(f"{s.name} {s.path} {_free(s)}, below the critical mark of "
                         f"{self.critical_mb} MB (storage.on_critical: refuse_new)"
                         for s in critical)  # fmt: skip

    def _alert(self, before: DiskState | None, state: DiskState, now: float) -> None:
        fields = {"dir": state.name, "path": str(state.path), "free_mb": state.free_mb,
                  "low_mb": self.low_mb, "critical_mb": self.critical_mb}  # fmt: skip
        if state.level == CRITICAL:
            last = self._last_alarm.get(state.name)
            if before is None or before.level != CRITICAL or last is None \
                    or now - last >= self.repeat_s:
                self._last_alarm[state.name] = now
                then = "new recordings are refused" if self.refuse_new else \
                    "recordings go on until the disk is full"
                log.error("disk.critical", **fields, error=state.error, then=then)
            return
        self._last_alarm.pop(state.name, None)
        if before is not None and before.level == state.level:
            return
        if state.level == LOW:
            log.warning("disk.low", **fields)
        elif before is not None:  # back above the low mark
            log.info("disk.ok", **fields)


def _free(state: DiskState) -> str:
    return "free space unreadable" if state.free_mb is None else f"has {state.free_mb} MB free"
