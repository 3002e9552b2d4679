"""Is a directory usable for recordings: present, writable, with enough free space?

Used by `verbatim health` for the spool and the archive. Writability is tested by creating a
file, not with os.access: access() says yes to root on a read-only mount or a full disk.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DirHealth:
    writable: bool
    free_mb: int | None  # space available to unprivileged users; None if it cannot be read
    ok: bool  # writable and free_mb >= min_free_mb
    error: str | None  # why not ok, for people


def check_dir(path: Path, min_free_mb: int) -> DirHealth:
    path = Path(path)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        return DirHealth(False, None, False, f"{path} {what}")
    free_mb: int | None
    try:
        st = os.statvfs(path)
        free_mb = st.f_bavail * st.f_frsize // (1024 * 1024)
    except OSError as e:
        free_mb = None
        statvfs_error: str | None = f"cannot read free space of {path}: {e.strerror}"
    else:
        statvfs_error = None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".health-", delete=True) as f:
            f.write(b"x")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return DirHealth(False, free_mb, False, f"{path} is not writable: {e.strerror or e}")
    if statvfs_error is not None:
        return DirHealth(True, None, False, statvfs_error)
    assert free_mb is not None
    if free_mb < min_free_mb:
        return DirHealth(
            True,
            free_mb,
            False,
            f"{path} has {free_mb} MB free, below the {min_free_mb} MB minimum",
        )
    return DirHealth(True, free_mb, True, None)
