"""Debian's chromium for the browser tests (Playwright drives it; its own downloads are never
used): where it is, its arguments, and the mark that skips a test without it outside CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.api_world import PASSWORD, World, web_fixture  # noqa: F401 (fixture)

CHROMIUM = Path("/usr/bin/chromium")

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (bash .ci/setup installs it)",
)
