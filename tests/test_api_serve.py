"""Serving for real: `verbatim serve` as a process, HTTPS with the configured certificate, and
`verbatim run`'s http_if_enabled; plus the http: configuration section."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from recorder.api.server import create_pool, http_if_enabled, serving
from recorder.config import ConfigError, HttpConfig, load_config
from recorder.devtools.pgcluster import free_port
from tests.harness.api_world import config_for

BASE = """
ari: {username: verbatim, password: secret}
database: {dsn: "postgresql://u@127.0.0.1/db"}
storage: {archive_dir: /var/lib/verbatim/archive}
"""


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


async def test_https_with_the_configured_certificate(pg_dsn: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    http = HttpConfig(host="127.0.0.1", port=port, tls_cert=cert, tls_key=key)
    config = config_for(pg_dsn, tmp_path, http)
    pool = await create_pool(pg_dsn)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with serving(config, pool), aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/login", ssl=trust) as resp:
                assert resp.status == 200
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
                assert "Secure" in resp.headers["Set-Cookie"]
            with pytest.raises(aiohttp.ClientError):  # plain HTTP is not answered
                async with session.get(f"http://127.0.0.1:{port}/login") as plain:
                    await plain.read()
    finally:
        await pool.close()


async def test_run_serves_only_when_enabled(pg_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    disabled = config_for(pg_dsn, tmp_path, HttpConfig(port=port))
    async with http_if_enabled(disabled):
        connecting = asyncio.open_connection("127.0.0.1", port)
        refused = await asyncio.gather(connecting, return_exceptions=True)
    assert isinstance(refused[0], OSError)
    enabled = config_for(pg_dsn, tmp_path, HttpConfig(enabled=True, port=port))
    async with http_if_enabled(enabled):
        assert await _status(f"http://127.0.0.1:{port}/api/openapi.json") == 200


def test_verbatim_serve_process(pg_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "verbatim.yaml"
    config.write_text(
        f'ari: {{username: v, password: s}}\ndatabase: {{dsn: "{pg_dsn}"}}\n'
        f'storage: {{archive_dir: "{tmp_path}", spool_dir: null}}\nhttp: {{port: {port}}}\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "serve", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    try:
        deadline, status = time.monotonic() + 20, None
        while time.monotonic() < deadline and status is None:
            try:
                status = asyncio.run(_status(f"http://127.0.0.1:{port}/api/calls"))
            except OSError:
                time.sleep(0.1)
        assert status == 401  # up, and asking who we are
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0].decode()
    assert "http.listening" in output and pg_dsn not in output  # the DSN is never logged


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status


def _load(tmp_path: Path, http: str) -> HttpConfig:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + http)
    return load_config(path, {}).http


def test_http_defaults_and_values(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == HttpConfig()
    assert HttpConfig().host == "127.0.0.1" and not HttpConfig().enabled
    c = _load(tmp_path, "http:\n  enabled: true\n  host: 0.0.0.0\n  port: 8443\n"
              "  tls_cert: /etc/v/cert.pem\n  tls_key: /etc/v/key.pem\n"
              "  session_idle_s: 600\n  session_max_s: 3600\n")  # fmt: skip
    assert c.enabled and c.tls and c.port == 8443 and c.tls_key == Path("/etc/v/key.pem")
    assert _load(tmp_path, "http: {host: '::1', secure_cookies: yes}\n").secure_cookies


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ("http: {host: 0.0.0.0}", "http.host: '0.0.0.0' is not a loopback address"),
        ("http: {host: 192.168.1.5}", "serve it with TLS"),
        ("http: {tls_cert: /etc/c.pem}", "http.tls_key: tls_cert and tls_key go together"),
        ("http: {tls_cert: c.pem, tls_key: k.pem}", "http.tls_cert: must be an absolute path"),
        ("http: {port: 70000}", "http.port: must be between 1 and 65535"),
        ("http: {enabled: 'yes'}", "http.enabled: expected true or false, got string 'yes'"),
        ("http: {session_idle_s: 30}", "http.session_idle_s: must be at least 60"),
        ("http: {session_idle_s: 900, session_max_s: 600}", "must be at least session_idle_s"),
        ("http: {bind: 127.0.0.1}", "http.bind: unknown key"),
    ],
)
def test_http_errors(tmp_path: Path, http: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, http + "\n")
