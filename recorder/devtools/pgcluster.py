"""A private PostgreSQL cluster for development, demos and tests: never a system service.

The cluster lives in one directory, listens on 127.0.0.1 only (plus a unix socket inside the data
directory) and trusts local connections, so it must only ever be used in a private temporary
directory. initdb and postgres refuse to run as root; when we are root they run as the `postgres`
system user (Debian's package creates it), which then owns the data directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import random
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Collection
from pathlib import Path
from types import TracebackType
from typing import Any, Self

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107
SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    """PostgreSQL is missing, or the private cluster could not be created, started or used."""


def find_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres: `pg_config --bindir`, else the newest Debian one.

    Debian's /usr/bin/pg_config may come from libpq-dev without a server, so its answer is only
    taken when initdb is really there.
    """
    tried: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            tried.append(out)
            if (Path(out) / "initdb").is_file():
                return Path(out)

    def version(p: str) -> tuple[int, ...]:
        digits = re.findall(r"\d+", Path(p).parent.name)
        return tuple(int(d) for d in digits)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for cand in candidates:
        tried.append(cand)
        if (Path(cand) / "initdb").is_file():
            return Path(cand)
    raise ClusterError(
        "PostgreSQL server binaries not found: no initdb in "
        + (", ".join(tried) if tried else "pg_config --bindir or /usr/lib/postgresql/*/bin")
        + " (Debian: apt-get install postgresql)"
    )


# free_port's ports: blocks of this many below the kernel's ephemeral range, the n-th for
# pytest-xdist's worker gw<n> (any other program draws from the first).
_BLOCK = 1000


def free_port(taken: Collection[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (start() retries if it is taken),
    and not one of `taken`. Drawn below the kernel's range of ephemeral ports, which port-0
    listeners and outgoing connections take: a server stopped and started again on its port
    (the tests' outages) still finds it free while other tests run beside it. Each
    pytest-xdist worker draws from a block of its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) % 8 if worker[2:].isdigit() else 0
    top = _ephemeral_start() - index * _BLOCK
    if top - _BLOCK >= 1024:
        start = random.randrange(_BLOCK)  # noqa: S311 (spreads ports; no secret)
        for i in range(_BLOCK):
            port = top - _BLOCK + (start + i) % _BLOCK
            if port not in taken and _bindable(port):
                return port
    while True:  # no room below the ephemeral range: any port the kernel gives
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PrivateCluster:
    """initdb + pg_ctl on a directory of our own; usable as a context manager.

    `fsync=False` turns off fsync, synchronous_commit and full_page_writes: a crash can lose
    the cluster, which is fine for tests and demos and never for real data.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        fsync: bool = True,
        bindir: Path | None = None,
        database: str | None = "verbatim",
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self._fixed_port = port is not None
        self.fsync = fsync
        self._bindir = bindir
        self.database = database
        self.start_timeout = start_timeout
        self.log_file = self.data_dir / "server.log"
        self._run_as = self._service_user()

    # -- public API -------------------------------------------------------------------------

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @property
    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        proc = self._pg(["pg_ctl", "status", "-D", str(self.data_dir)], check=False)
        return proc.returncode == 0

    def start(self) -> None:
        """initdb if the directory is empty, then start; adopt a cluster already running there."""
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (self.bindir / tool).is_file():
                raise ClusterError(f"PostgreSQL binary {self.bindir / tool} is missing")
        self._prepare_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.running:
            self._adopt()
        else:
            self._start_server()
        if self.database:
            try:
                self.create_database(self.database)
            except BaseException:
                self.stop()  # don't leave a server behind that nobody will stop
                raise

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions); a no-op if not running."""
        if (self.data_dir / "PG_VERSION").exists() and self.running:
            self._pg(["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"])

    def clone(self, primary: PrivateCluster) -> None:
        """Make this (empty) directory a streaming standby of `primary`: pg_basebackup -R
        writes standby.signal and primary_conninfo; start() then runs it read-only."""
        if primary.port is None:
            raise ClusterError(f"cluster in {primary.data_dir} is not started")
        self._prepare_dir()
        self._pg(["pg_basebackup", "-D", str(self.data_dir), "-h", "127.0.0.1",
                  "-p", str(primary.port), "-U", SUPERUSER, "-R", "-X", "stream", "-c", "fast"]
                 + ([] if self.fsync else ["--no-sync"]))

    def promote(self) -> None:
        """A standby becomes a primary (takes writes); waits until it does."""
        self._pg(["pg_ctl", "promote", "-D", str(self.data_dir), "-w", "-t", "60"])

    def dsn(self, db: str = "verbatim") -> str:
        if self.port is None:
            raise ClusterError(f"cluster in {self.data_dir} is not started")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> bool:
        """Create database `name` unless it exists; True if it was created."""
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        # `name` matched _DB_NAME above: no quote can reach the SQL.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608
        exists = self.psql(query, db="postgres")
        if exists.strip() == "1":
            return False
        self.psql(f'CREATE DATABASE "{name}"', db="postgres")
        return True

    def drop_database(self, name: str) -> None:
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', db="postgres")

    def psql(self, sql: str, db: str = "verbatim") -> str:
        """Run SQL with psql (tuples only, unaligned); returns stdout. Raises on any error."""
        if self.port is None:
            raise ClusterError(f"cluster in {self.data_dir} is not started")
        cmd = [
            str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", db, "-c", sql,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
        except (FileNotFoundError, subprocess.TimeoutExpired) as e:
            raise ClusterError(f"{cmd[0]} failed on {self.data_dir}: {e}") from e
        if proc.returncode != 0:
            raise ClusterError(
                f"psql failed on {self.data_dir} ({sql[:60]!r}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _service_user() -> pwd.struct_passwd | None:
        """Who runs initdb/pg_ctl/postgres: us, or the postgres user when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterError(
                "running as root, and initdb/postgres refuse root, but there is no 'postgres' "
                "system user to run them as: create one, or run as an ordinary user"
            ) from None

    def _prepare_dir(self) -> None:
        d = self.data_dir
        if d.exists() and not d.is_dir():
            raise ClusterError(f"PostgreSQL data directory {d} is not a directory")
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "PG_VERSION").exists() and any(d.iterdir()):
            raise ClusterError(f"PostgreSQL data directory {d} is neither empty nor a cluster")
        if self._run_as is not None:
            os.chown(d, self._run_as.pw_uid, self._run_as.pw_gid)
        os.chmod(d, 0o700)  # postgres refuses a group/world-readable data directory
        if self._run_as is not None:
            # Root can reach any path; the postgres user needs search (x) on every parent.
            probe = self._pg(["test", "-w", str(d)], check=False, tool_in_bindir=False)
            if probe.returncode != 0:
                blocker = next((p for p in d.parents if not os.stat(p).st_mode & 0o001), d.parent)
                raise ClusterError(
                    f"the postgres user cannot reach {d}: {blocker} is not traversable "
                    "(chmod o+x it, or put the cluster under another directory)"
                )

    def _initdb(self) -> None:
        cmd = [
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C",
        ]  # fmt: skip
        if not self.fsync:
            cmd.append("--no-sync")
        self._pg(cmd)

    def _socket_dir(self) -> str:
        # The socket is a convenience (psql -h <dir>); TCP on loopback is what we use.
        path = f"{self.data_dir}/.s.PGSQL.{self.port}"
        return str(self.data_dir) if len(path.encode()) <= _MAX_SOCKET_PATH else ""

    def _start_server(self) -> None:
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self._fixed_port:
                self.port = free_port()
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": self._socket_dir(),
            }
            if not self.fsync:
                settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
            # pg_ctl hands -o to /bin/sh: quote, in case the data dir's path has spaces.
            opts = [f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items()]
            cmd = [
                "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                "-t", str(int(self.start_timeout)), "-o", " ".join(opts),
            ]  # fmt: skip
            proc = self._pg(cmd, check=False)
            if proc.returncode == 0:
                return
            log = self._log_tail()
            if attempt + 1 < attempts and "could not bind" in log:
                continue  # someone took the port between free_port() and bind: try another
            raise ClusterError(
                f"pg_ctl start failed for {self.data_dir} on port {self.port}: "
                f"{(proc.stderr or proc.stdout).strip()}\n{log}"
            )

    def _adopt(self) -> None:
        # postmaster.pid line 4 is the port (see PostgreSQL's pidfile.h).
        try:
            port = int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError) as e:
            raise ClusterError(
                f"cannot read the port of the cluster running in {self.data_dir}"
            ) from e
        if self._fixed_port and port != self.port:
            raise ClusterError(
                f"cluster in {self.data_dir} is already running on port {port}, not {self.port}"
            )
        self.port = port

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _pg(
        self, cmd: list[str], *, check: bool = True, tool_in_bindir: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / cmd[0]) if tool_in_bindir else cmd[0], *cmd[1:]]
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            # Same effect as runuser/setpriv, without depending on either being installed.
            kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C"}
        if self._run_as is not None:
            env["HOME"] = self._run_as.pw_dir
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                cwd="/",  # the postgres user may not be allowed into our cwd
                env=env,
                timeout=self.start_timeout + 30,
                **kwargs,
            )
        except FileNotFoundError as e:
            raise ClusterError(f"PostgreSQL binary {argv[0]} not found") from e
        except subprocess.TimeoutExpired as e:
            raise ClusterError(f"{argv[0]} timed out on {self.data_dir}") from e
        if check and proc.returncode != 0:
            raise ClusterError(
                f"{Path(argv[0]).name} failed for {self.data_dir} (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc
