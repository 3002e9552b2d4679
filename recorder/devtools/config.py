"""The daemon's configuration file for the programs that start a daemon of their own: the tests'
`verbatim run` processes (tests/harness/daemon.py), the benchmarks (bench/), and what
`verbatim demo --keep` leaves behind. One template, so they differ only in what each asks for.

The ARI password and the database DSN are never in it: they come from VERBATIM_ARI_PASSWORD and
VERBATIM_DATABASE_DSN, as in production. (tests/harness/stack.py builds its Config in the same
process, with port 0 for a free port, which a file cannot say; it shares FAST_RECONNECT.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

# Tests: a restarted simulator (or a dropped connection) is found again at once.
FAST_RECONNECT: Final = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2}


def config_text(
    *, url: str, spool: Path, archive: Path, fast_reconnect: bool = False,
    pool_max: int | None = None, journal_dir: Path | None = None,
    metrics_port: int | None = None, s3: Mapping[str, Any] | None = None,
) -> str:  # fmt: skip
    """verbatim.yaml for a daemon on the ARI at `url`, filing from `spool` into `archive`.
    `s3`: storage.s3's keys (storage.backend s3). Logs: info, as JSON lines."""
    ari: dict[str, Any] = {"url": url, "username": "verbatim"}
    if fast_reconnect:
        ari |= FAST_RECONNECT
    doc: dict[str, Any] = {"ari": ari}
    if pool_max is not None:
        doc["database"] = {"pool_max": pool_max}
    storage: dict[str, Any] = {"spool_dir": str(spool), "archive_dir": str(archive)}
    if journal_dir is not None:
        storage["journal_dir"] = str(journal_dir)
    if s3 is not None:
        storage |= {"backend": "s3", "s3": dict(s3)}
    doc["storage"] = storage
    doc["logging"] = {"level": "info", "format": "json"}
    if metrics_port is not None:
        doc["metrics"] = {"port": metrics_port}
    return yaml.safe_dump(doc, sort_keys=False)
