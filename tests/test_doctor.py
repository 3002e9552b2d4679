"""`verbatim doctor` against the simulator (ARI and AMI), a real PostgreSQL and real folders:
a healthy installation passes every check; each check broken in turn fails alone, with a fix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest
from arisim.ami import AmiServer
from arisim.server import Simulator
from arisim.testing import AriClient, running_simulator

from recorder.cli.doctor import NAMES, Check, diagnose, shipped_contexts
from recorder.common.resources import shipped
from recorder.config import (
    AmiConfig,
    AriConfig,
    Config,
    DatabaseConfig,
    EncryptionConfig,
    HooksConfig,
    MasterKeySource,
    S3Config,
    Secret,
    StorageConfig,
)
from recorder.db.migrate import migrate
from recorder.devtools.pgcluster import PrivateCluster, free_port
from tests.harness.seaweedfs import SeaweedFS

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ("verbatim/consent-all-party-en", "verbatim/consent-one-party-en", "verbatim/consent")


@dataclass
class Site:
    """A healthy installation: the simulator with the shipped dialplan, its AMI, a FastAGI
    listener, spool and archive folders, the migrated test database."""

    sim: Simulator
    ami: AmiServer
    app: AriClient
    config: Config
    tmp: Path
    cluster: PrivateCluster


@pytest.fixture
async def site(tmp_path: Path, pg_dsn: str, pg_cluster: PrivateCluster) -> AsyncIterator[Site]:
    sounds = dict.fromkeys(PROMPTS, 5.0)
    async with running_simulator(tmp_path / "spool", password="ari-secret", sounds=sounds,
                                 clock_mode="auto") as sim:
        for name in ("verbatim.conf", "verbatim-hooks.conf"):
            sim.load_dialplan((shipped("dialplan") / name).read_text())
        ami = AmiServer(sim.dialplan, "doctor", "ami-secret")
        ami_port = await ami.start()
        agi = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        app = AriClient(sim)  # a recorder connected: the app is registered
        await app.connect()
        (tmp_path / "archive").mkdir()
        config = Config(
            ari=AriConfig(url=sim.base_url, username=sim.username,
                          password=Secret("ari-secret")),
            database=DatabaseConfig(dsn=Secret(pg_dsn)),
            storage=StorageConfig(archive_dir=tmp_path / "archive", spool_dir=tmp_path / "spool",
                                  min_free_mb=1),
            hooks=HooksConfig(enabled=True, port=agi.sockets[0].getsockname()[1]),
            ami=AmiConfig(port=ami_port, username="doctor", secret=Secret("ami-secret")),
        )
        try:
            yield Site(sim, ami, app, config, tmp_path, pg_cluster)
        finally:
            await app.close()
            agi.close()
            await ami.stop()


Breaker = Callable[["Site"], Awaitable[Config]]


def _by_name(checks: list[Check]) -> dict[str, Check]:
    assert [c.name for c in checks] == list(NAMES)
    return {c.name: c for c in checks}


async def test_a_healthy_installation_passes_every_check(site: Site) -> None:
    checks = _by_name(await diagnose(site.config))
    assert {n: c.detail for n, c in checks.items() if c.ok is not True} == {}
    assert "Asterisk 22" in checks["ari"].detail
    assert "verbatim-record" in checks["dialplan"].detail
    assert "verbatim/consent" in checks["prompts"].detail
    assert site.ami.actions[:2] == ["Login", "ShowDialPlan"] and site.ami.actions[-1] == "Logoff"
    no_ami = _by_name(await diagnose(replace(site.config, ami=AmiConfig())))
    assert no_ami["dialplan"].ok is None and "could not check" in no_ami["dialplan"].detail


async def test_a_working_object_store_passes(site: Site, seaweed: SeaweedFS) -> None:
    config = _config(site, **{"storage.backend": "s3", "storage.s3": seaweed.config()})
    check = _by_name(await diagnose(config))["object_store"]
    assert check.ok is True and "takes, confirms and deletes" in check.detail, check


def _config(site: Site, **changes: object) -> Config:
    """site.config with section fields changed: {"storage.min_free_mb": 10**9}."""
    config = site.config
    for key, value in changes.items():
        section, field = key.split(".")
        config = replace(config, **{section: replace(getattr(config, section), **{field: value})})
    return config


async def _fresh_database(site: Site) -> Config:
    name = "doctor_" + uuid.uuid4().hex[:10]
    site.cluster.create_database(name)
    return _config(site, **{"database.dsn": Secret(site.cluster.dsn(name))})


async def _broken_policy(site: Site) -> Config:
    bad = site.tmp / "policy.yaml"
    bad.write_text("rules:\n  - name: x\n    action: perhaps\n")
    return _config(site, **{"calls.policy_file": bad})


async def _no_app(site: Site) -> Config:
    await site.app.close()  # the recorder disconnects
    await site.sim.settle()
    return site.config


async def _no_context(site: Site) -> Config:
    del site.sim.dialplan.contexts["verbatim-fallback"]
    return site.config


async def _no_prompt(site: Site) -> Config:
    del site.sim.dialplan.sounds["verbatim/consent-one-party-en"]
    return site.config


async def _clock_ahead(site: Site) -> Config:
    site.sim.clock.start_epoch += 90
    return site.config


async def _archive_is_a_file(site: Site) -> Config:
    (site.tmp / "file").write_text("x")
    return _config(site, **{"storage.archive_dir": site.tmp / "file"})


def _changed(**changes: object) -> Breaker:
    async def change(site: Site) -> Config:
        return _config(site, **changes)
    return change


BROKEN: dict[str, tuple[Breaker, str]] = {
    "ari": (_changed(**{"ari.url": f"http://127.0.0.1:{free_port()}"}), "http.conf"),
    "credentials": (_changed(**{"ari.password": Secret("wrong")}), "ari.conf"),
    "application": (_no_app, "start the daemon"),
    "dialplan": (_no_context, "#include verbatim.conf"),
    "fastagi": (_changed(**{"hooks.port": free_port()}), "agi://127.0.0.1:"),
    "spool": (_changed(**{"storage.spool_dir": Path("/nonexistent/spool")}), "spool_dir: null"),
    "archive": (_archive_is_a_file, "install -d"),
    "free_space": (_changed(**{"storage.min_free_mb": 10**9}), "free space"),
    "object_store": (_changed(**{"storage.backend": "s3", "storage.s3": S3Config(
        "recordings", f"http://127.0.0.1:{free_port()}", access_key=Secret("k"),
        secret_key=Secret("s"))}), "VERBATIM_S3_SECRET_KEY"),
    "encryption": (_changed(**{"storage.encryption": EncryptionConfig(MasterKeySource(
        "k1", Path("/nonexistent/master.key")))}), "verbatim keys new"),
    "database": (_changed(**{"database.dsn": Secret(f"postgresql://x@127.0.0.1:{free_port()}/x")}),
                 "VERBATIM_DATABASE_DSN"),
    "migrations": (_fresh_database, "verbatim migrate"),
    "policy": (_broken_policy, "policy file"),
    "prompts": (_no_prompt, "verbatim prompts install"),
    "clock": (_clock_ahead, "timedatectl"),
}
# What a failed check leaves unchecked (ok None).
DEPENDS = {"ari": {"credentials", "application", "prompts", "clock"},
           "credentials": {"application", "prompts", "clock"},
           "database": {"migrations"}, "policy": {"prompts"}}


def test_every_check_is_broken_by_one_test() -> None:
    assert set(BROKEN) == set(NAMES)


@pytest.mark.parametrize("name", list(BROKEN))
async def test_a_broken_check_fails_alone_with_a_fix(site: Site, name: str) -> None:
    breaks, fix = BROKEN[name]
    config = await breaks(site)
    checks = _by_name(await diagnose(config))
    assert checks[name].ok is False, checks[name]
    assert fix in (checks[name].fix or ""), checks[name]
    assert {n for n, c in checks.items() if c.ok is False} == {name}, checks
    assert {n for n, c in checks.items() if c.ok is None} == DEPENDS.get(name, set())


async def test_the_command_exits_1_with_json_and_hides_secrets(site: Site) -> None:
    conf = site.tmp / "verbatim.yaml"
    conf.write_text(
        f'ari:\n  url: "{site.sim.base_url}"\n  username: "{site.sim.username}"\n'
        f'storage:\n  spool_dir: null\n  archive_dir: "{site.tmp / "archive"}"\n'
        "  min_free_mb: 1\n"
        f'ami:\n  port: {site.config.ami.port}\n  username: "doctor"\n'
    )
    env = {**os.environ, "VERBATIM_ARI_PASSWORD": "ari-secret", "VERBATIM_AMI_SECRET": "nope",
           "VERBATIM_DATABASE_DSN": site.config.database.dsn.reveal()}

    def doctor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "recorder.cli", "doctor", "-c", str(conf),
                               *args], capture_output=True, text=True, env=env, timeout=60,
                              cwd=ROOT, check=False)

    out = await asyncio.to_thread(doctor, "--json")
    assert out.returncode == 1, out.stderr
    found = json.loads(out.stdout)
    failing = {c["name"]: c for c in found["checks"] if c["ok"] is False}
    assert found["ok"] is False and set(failing) == {"dialplan"}  # the AMI secret is wrong
    assert "Authentication failed" in failing["dialplan"]["detail"]
    assert "ari-secret" not in out.stdout and "nope" not in out.stdout
    text = await asyncio.to_thread(doctor)
    assert text.returncode == 1 and "FAIL  dialplan" in text.stdout
    assert "fix: manager.conf" in text.stdout and text.stdout.endswith("1 problem(s)\n")
    env["VERBATIM_AMI_SECRET"] = "ami-secret"
    assert (await asyncio.to_thread(doctor)).returncode == 0


def test_the_shipped_contexts() -> None:
    assert shipped_contexts(hooks=False)[:2] == ["verbatim-inbound", "verbatim-outbound"]
    assert "verbatim-record" in shipped_contexts(hooks=True)



async def test_a_spool_the_daemon_cannot_write_names_owner_and_mode(site: Site) -> None:
    # sysfs refuses new files even to root: a folder this user cannot write, whoever runs this
    config = _config(site, **{"storage.spool_dir": Path("/sys")})
    spool = _by_name(await diagnose(config))["spool"]
    assert spool.ok is False and "not writable" in spool.detail, spool
    assert "root:root mode 555" in spool.detail and "usermod -aG asterisk" in (spool.fix or "")


async def test_a_newer_schema_is_fine_after_a_rollback(site: Site) -> None:
    config = await _fresh_database(site)
    dsn = config.database.dsn.reveal()
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name, sha256) "
                           "VALUES (9999, '9999_later', 'x')")
    finally:
        await conn.close()
    check = _by_name(await diagnose(config))["migrations"]
    assert check.ok is True and "9999_later from a newer Verbatim" in check.detail
