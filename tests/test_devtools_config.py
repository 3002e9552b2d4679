"""recorder.devtools.config: the one daemon config template of the tests, benchmarks and demo,
read back by the real loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recorder.config import load_config
from recorder.devtools.config import config_text

ENV = {"VERBATIM_ARI_PASSWORD": "pw", "VERBATIM_DATABASE_DSN": "postgresql://u@127.0.0.1/db"}
S3 = {"bucket": "recordings", "endpoint": "http://127.0.0.1:9", "access_key": "k",
      "secret_key": "s", "retry_max_s": 0.5}  # fmt: skip


@pytest.mark.parametrize(("asked", "expected"), [
    ({}, {"ari.reconnect_initial_s": 0.5, "database.pool_max": 5, "storage.backend": "local",
          "storage.journal_dir": None, "logging.level": "info", "logging.format": "json",
          "metrics.port": 9480}),
    ({"fast_reconnect": True, "pool_max": 2},
     {"ari.reconnect_initial_s": 0.05, "ari.reconnect_max_s": 0.2, "database.pool_max": 2}),
    ({"journal_dir": Path("/var/lib/j j")}, {"storage.journal_dir": Path("/var/lib/j j")}),
    ({"s3": S3}, {"storage.backend": "s3", "storage.s3.bucket": "recordings",
                  "storage.s3.retry_max_s": 0.5}),
    ({"metrics_port": 9999}, {"metrics.port": 9999}),
])  # fmt: skip
def test_the_template_reads_back_as_asked(
    tmp_path: Path, asked: dict[str, Any], expected: dict[str, Any]
) -> None:
    path = tmp_path / "verbatim.yaml"
    spool, archive = tmp_path / "sp ool", tmp_path / "archive"
    path.write_text(config_text(url="http://127.0.0.1:8088", spool=spool, archive=archive,
                                **asked))  # fmt: skip
    config = load_config(path, ENV)
    assert (config.ari.url, config.ari.username) == ("http://127.0.0.1:8088", "verbatim")
    assert (config.storage.spool_dir, config.storage.archive_dir) == (spool, archive)
    for dotted, value in expected.items():
        found: Any = config
        for part in dotted.split("."):
            found = getattr(found, part)
        assert found == value, dotted
