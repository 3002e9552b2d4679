"""The `verbatim` command line run as a real process from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def verbatim(*args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`verbatim ARGS` from the checkout, its environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def explain_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`verbatim explain ARGS` with no verbatim.yaml (so no departments)."""
    return verbatim("explain", *args, env={"VERBATIM_CONFIG": "/nonexistent/verbatim.yaml"})
