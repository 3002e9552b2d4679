"""calls.ring_groups: read into the config, and wrong entries named by key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.config import ConfigError, load_config

BASE = 'ari:\n  username: "v"\nstorage:\n  archive_dir: "/tmp/a"\ncalls:\n  ring_groups:\n'
ENV = {"VERBATIM_ARI_PASSWORD": "x", "VERBATIM_DATABASE_DSN": "postgresql://h/db"}


def test_ring_groups_are_read(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(BASE + '    "600": ["201", "202"]\n    "601": ["202"]\n')
    groups = load_config(path, ENV).calls.ring_groups
    assert dict(groups) == {"600": ("201", "202"), "601": ("202",)}


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ('    "6x0": ["201"]\n', ":7: calls.ring_groups.6x0:"),
        ('    "600": []\n', ":7: calls.ring_groups.600:"),
        ('    "600": [201]\n', ":7: calls.ring_groups.600[0]:"),
        ('    "600": ["201", "201"]\n', ":7: calls.ring_groups.600[1]:"),
        ('    "600": ["600"]\n', ":7: calls.ring_groups.600[0]:"),
    ],
)
def test_bad_ring_groups_name_key_and_line(tmp_path: Path, entry: str, where: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(BASE + entry)
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV)
    assert where in str(info.value)
