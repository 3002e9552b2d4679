"""Installed like real software: the wheel built from this tree, in a fresh venv outside it.

The wheel is built from a copy of the tree (so no stale build/ can leak into it), installed with
pip into a new venv (no system site-packages; dependencies from the configured index and pip's
cache), and each command an admin runs first is run from a folder outside the repository with
no PYTHONPATH: migrate, prompts build/install, check-config on the shipped example, demo, serve.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from recorder.devtools.pgcluster import PrivateCluster, free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".data", "traces",
    "tests", "bench", "docs",
)


class Installed:
    def __init__(self, venv: Path, home: Path) -> None:
        self.venv, self.home = venv, home
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True,
            cwd=self.home, env={**self.env, **(env or {})}, timeout=timeout, check=False,
        )

    def site(self) -> Path:
        out = self.run("python", "-c", "import recorder, arisim; print(recorder.__file__); "
                       "print(arisim.__file__)")
        assert out.returncode == 0, out.stderr
        paths = [Path(line) for line in out.stdout.split()]
        assert all(self.venv in p.parents for p in paths), paths  # not the source tree
        return paths[0].parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv, home = base / "src", base / "dist", base / "venv", base / "home"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_NOT_SOURCE)
    home.mkdir()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("verbatim-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True, text=True, timeout=240, env=env, cwd=home, check=False,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    yield Installed(venv, home)


def _config(folder: Path, dsn: str, http_port: int = 8480) -> tuple[Path, dict[str, str]]:
    (folder / "archive").mkdir(parents=True, exist_ok=True)
    conf = folder / "verbatim.yaml"
    conf.write_text(
        'ari:\n  url: "http://127.0.0.1:9"\n  username: "verbatim"\n'
        f'storage:\n  spool_dir: null\n  archive_dir: "{folder / "archive"}"\n'
        f'http:\n  host: "127.0.0.1"\n  port: {http_port}\n'
    )
    return conf, {"VERBATIM_ARI_PASSWORD": "x", "VERBATIM_DATABASE_DSN": dsn}


def test_the_wheel_carries_its_files(installed: Installed) -> None:
    site = installed.site()
    shipped = {p.relative_to(site / "data").as_posix() for p in (site / "data").rglob("*")
               if p.is_file()}
    in_tree = {p.relative_to(ROOT).as_posix()
               for folder in ("migrations", "consent_prompts", "dialplan", "config")
               for p in (ROOT / folder).iterdir() if p.is_file()}
    assert shipped == in_tree
    assert (site.parent / "arisim" / "ari_spec.json").is_file()
    example = site / "data" / "config" / "verbatim.example.yaml"
    secrets = {"VERBATIM_ARI_PASSWORD": "x", "VERBATIM_DATABASE_DSN": "postgresql://h/d"}
    out = installed.run("verbatim", "check-config", str(example), env=secrets)
    assert out.returncode == 0, out.stderr


def test_migrate(installed: Installed, pg_cluster: PrivateCluster, tmp_path: Path) -> None:
    name = "w_" + uuid.uuid4().hex[:12]
    pg_cluster.create_database(name)
    try:
        conf, env = _config(tmp_path, pg_cluster.dsn(name))
        first = installed.run("verbatim", "migrate", "-c", str(conf), env=env)
        assert first.returncode == 0, first.stderr
        shipped = sorted(p.stem for p in (ROOT / "migrations").glob("*.sql"))
        assert first.stdout.strip() == f"applied: {', '.join(shipped)}"
        again = installed.run("verbatim", "migrate", "-c", str(conf), env=env)
        assert again.stdout.strip() == "schema up to date"
    finally:
        pg_cluster.drop_database(name)


def test_prompts_build_and_install(installed: Installed, tmp_path: Path) -> None:
    built = installed.run("verbatim", "prompts", "build", "--out", str(tmp_path / "built"))
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "built" / "manifest.json").read_text() == (
        ROOT / "consent_prompts" / "manifest.json").read_text()  # the same bytes from the wheel
    sounds = tmp_path / "sounds" / "en" / "verbatim"
    done = installed.run("verbatim", "prompts", "install", "--sounds-dir", str(sounds))
    assert done.returncode == 0, done.stderr
    assert "Playback(verbatim/consent)" in done.stdout
    assert (sounds / "consent.wav").is_file() and (sounds / "consent-all-party-en.wav").is_file()


def test_demo(installed: Installed) -> None:
    # Not under tmp_path: pytest's folders are closed to the postgres user the demo runs as.
    folder = Path(tempfile.mkdtemp(prefix="verbatim-wheel-demo-"))
    try:
        out = installed.run("verbatim", "demo", "--dir", str(folder), timeout=110)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for outcome in ("answered", "busy", "no_answer", "abandoned"):
        assert outcome in out.stdout
    assert "Traceback" not in out.stderr


def test_serve(installed: Installed, pg_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    conf, env = _config(tmp_path, pg_dsn, port)
    server = subprocess.Popen(
        [str(installed.venv / "bin" / "verbatim"), "serve", "-c", str(conf)],
        cwd=installed.home, env={**installed.env, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.2)
        assert page.status_code == 200 and "<form" in page.text
        css = requests.get(f"http://127.0.0.1:{port}/static/style.css", timeout=2)
        assert css.status_code == 200  # package data reached the server
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert "Traceback" not in err, err[-2000:]
