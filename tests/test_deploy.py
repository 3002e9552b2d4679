"""The systemd unit and its EnvironmentFile example (deploy/systemd/): what systemd itself says
of the unit (systemd-analyze verify, when installed), the hardening it must keep, and that its
commands, paths and variables are the ones Verbatim has."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from recorder.cli.main import _parser
from recorder.config import model

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "systemd" / "verbatim.service"
ENV_EXAMPLE = ROOT / "deploy" / "systemd" / "verbatim.env.example"
EXAMPLE = ROOT / "config" / "verbatim.example.yaml"
BIN = "/opt/verbatim/bin/verbatim"


def unit() -> dict[str, dict[str, list[str]]]:
    """Sections → key → values (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    service = unit()["Service"]
    assert service["ExecStart"][0].startswith(BIN + " ")
    if analyze is None:  # not on this machine: the key checks below still run
        return
    # verify wants the commands to exist: point them at this venv's verbatim
    here = tmp_path / "verbatim.service"
    here.write_text(UNIT.read_text().replace(BIN, str(Path(sys.executable).parent / "verbatim")))
    out = subprocess.run([analyze, "verify", str(here)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_the_unit_keeps_its_hardening() -> None:
    service = unit()["Service"]
    required = {
        "Restart": "always", "User": "verbatim", "ProtectSystem": "strict",
        "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
        "EnvironmentFile": "/etc/verbatim/verbatim.env",
    }
    assert {k: service.get(k, ["(missing)"])[-1] for k in required} == required
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]


def test_it_writes_only_the_configured_archive_and_spool() -> None:
    storage = yaml.safe_load(EXAMPLE.read_text())["storage"]
    writable = " ".join(unit()["Service"]["ReadWritePaths"]).split()
    assert sorted(writable) == sorted([storage["archive_dir"], storage["spool_dir"]])
    state = unit()["Service"]["StateDirectory"][0].split()
    assert "/var/lib/" + state[-1] == storage["archive_dir"]  # created for the service's user


def test_its_commands_are_verbatims() -> None:
    service = unit()["Service"]
    for line in service["ExecStartPre"] + service["ExecStart"]:
        argv = shlex.split(line)
        assert argv[0] == BIN
        _parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown command or option


def test_the_environment_file_names_every_variable() -> None:
    text = ENV_EXAMPLE.read_text()
    names = set(re.findall(r"^(VERBATIM_[A-Z0-9_]+)=", text, re.MULTILINE))
    variables = {v for k, v in vars(model).items() if k.startswith("ENV_")}
    assert names == variables
    assert "/etc/verbatim/verbatim.env" in text and "0600" in text
