"""check_dir on real directories."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.storage.space import check_dir


def test_healthy_dir(tmp_path: Path) -> None:
    h = check_dir(tmp_path, min_free_mb=1)
    assert h.writable and h.ok and h.error is None
    assert h.free_mb is not None and h.free_mb > 1
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_not_enough_space(tmp_path: Path) -> None:
    h = check_dir(tmp_path, min_free_mb=10**12)
    assert h.writable and not h.ok and h.error is not None and "below" in h.error


def test_missing_and_not_a_dir(tmp_path: Path) -> None:
    h = check_dir(tmp_path / "nope", 1)
    assert not h.ok and not h.writable and h.error and "does not exist" in h.error
    f = tmp_path / "file"
    f.write_text("x")
    h = check_dir(f, 1)
    assert not h.ok and h.error and "is not a directory" in h.error


def test_not_writable(tmp_path: Path) -> None:
    # Root ignores modes, so use a directory the kernel itself refuses writes to.
    target = Path("/proc/self") if os.geteuid() == 0 else tmp_path
    if os.geteuid() != 0:
        os.chmod(target, 0o500)
    try:
        h = check_dir(target, 0)
    finally:
        if os.geteuid() != 0:
            os.chmod(target, 0o700)
    assert not h.writable and not h.ok and h.error and "is not writable" in h.error
