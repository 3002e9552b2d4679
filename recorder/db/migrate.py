"""Apply migrations/NNNN_name.sql files in order, once each, tracked in schema_migrations.

Several daemons (one per Asterisk server) may share a database and start together: the whole run
holds a session advisory lock, so the second waits and then finds nothing left to do. Each file
runs in its own transaction with its schema_migrations row, so a failing file leaves no trace.
A file that changed after it was applied is an error: the database would no longer match the
repository, and silently ignoring it hides a real schema drift.

A file whose first line is `-- migrate: no-transaction` runs outside a transaction (needed for
CREATE INDEX CONCURRENTLY on a large table), one statement at a time (PostgreSQL runs a
multi-statement string as one implicit transaction); it must then be safe to re-run.

A file rewritten into a form that makes the same schema (0013, once transactional, now built
concurrently) names each earlier form it replaces in a line `-- migrate: also applied as sha256
<hex>`: a database that applied that form is up to date, and a row keeps the first form's hash
whichever form ran (an older daemon, rolled back to or sharing the database, finds the hash it
knows).

Migrations run online, beside running daemons: a transactional file, and each statement of a
no-transaction file but its CONCURRENTLY builds and drops (they wait for older transactions by
design, without blocking writes), waits at most `lock_timeout_s` (5 s) for each lock it needs
and then fails (run it again), rather than queue every call's writes behind it while a long
transaction holds the table.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from recorder.common.resources import shipped

log = structlog.get_logger(__name__)

DEFAULT_DIRECTORY = shipped("migrations")
# Arbitrary constant identifying "verbatim schema migration" among advisory locks.
LOCK_KEY = 0x7665726261_7469
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_NO_TX = "-- migrate: no-transaction"
_EARLIER = re.compile(r"^-- migrate: also applied as sha256 ([0-9a-f]{64})$", re.MULTILINE)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # "0001_core"
    path: Path
    sql: str
    sha256: str

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(_NO_TX)

    @property
    def earlier_forms(self) -> list[str]:
        """The hashes of the forms this file replaces (`-- migrate: also applied as`)."""
        return _EARLIER.findall(self.sql)

    def applied_as(self, sha256: str) -> bool:
        """Whether a database that applied the file with this hash has this file's schema."""
        return sha256 == self.sha256 or sha256 in self.earlier_forms

    @property
    def recorded_sha256(self) -> str:
        """The hash its schema_migrations row keeps: the first form's, when the file names
        earlier ones, so that an older version sharing the database (or rolled back to) finds
        the hash of the file it ships; this version accepts every form (`applied_as`)."""
        return next(iter(self.earlier_forms), self.sha256)


def load(directory: Path) -> list[Migration]:
    """The migration files of `directory`, in version order; other .sql names are an error."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"migration file {path} is not named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(
                f"migration version {m.group(1)} used twice: {found[version].path} and {path}"
            )
        data = path.read_bytes()
        found[version] = Migration(
            version, path.stem, path, data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        )
    return [found[v] for v in sorted(found)]


async def migrate(
    dsn_or_conn: str | Any, directory: Path | None = None, *, lock_timeout_s: float = 5.0
) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date).

    `dsn_or_conn` is a DSN or an open asyncpg connection (left open, outside a transaction).
    """
    migrations = load(directory or DEFAULT_DIRECTORY)
    if isinstance(dsn_or_conn, str):
        conn = await asyncpg.connect(dsn_or_conn)
        try:
            return await _migrate(conn, migrations, lock_timeout_s)
        finally:
            await conn.close()
    return await _migrate(dsn_or_conn, migrations, lock_timeout_s)


async def pending_migrations(pool_or_conn: Any, directory: Path | None = None) -> list[str]:
    """Names of migration files not yet applied: the daemon refuses to start on an old schema."""
    names = [m.name for m in load(directory or DEFAULT_DIRECTORY)]
    exists = await pool_or_conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return names
    applied = {r["name"] for r in await pool_or_conn.fetch("SELECT name FROM schema_migrations")}
    return [n for n in names if n not in applied]


async def _migrate(conn: Any, migrations: list[Migration], lock_timeout_s: float) -> list[str]:
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, name, sha256 FROM schema_migrations")
        applied = {r["version"]: (r["name"], r["sha256"]) for r in rows}
        known = {m.version for m in migrations}
        for version in sorted(set(applied) - known):
            # A newer daemon migrated this database; an older one may still run (rollback).
            log.warning("migration.unknown_applied", version=version, name=applied[version][0])
        done: list[str] = []
        for m in migrations:
            if m.version in applied:
                name, sha = applied[m.version]
                if name != m.name or not m.applied_as(sha):
                    raise MigrationError(
                        f"migration {m.path} changed after it was applied as {name} "
                        f"(sha256 {sha[:12]}… in schema_migrations, {m.sha256[:12]}… on disk): "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            try:
                if m.transactional:
                    async with conn.transaction():
                        # SET LOCAL: ends with the transaction, a caller's connection keeps its own
                        await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_s * 1000)}")
                        await conn.execute(m.sql)
                        await _record(conn, m)
                else:
                    for statement in statements(m.sql):
                        await _run_alone(conn, statement, lock_timeout_s)
                    await _record(conn, m)
            except asyncpg.PostgresError as e:
                raise MigrationError(f"migration {m.path} failed: {e}") from e
            log.info("migration.applied", name=m.name)
            done.append(m.name)
        return done
    finally:
        # A dead connection released the lock with itself; don't mask the original error.
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


def statements(sql: str) -> list[str]:
    """A no-transaction file's statements: each ends with ';' at the end of a line that is not
    a comment, outside a $$-quoted body (the form our migrations are written in; not a general
    SQL parser). Comments stay with the statement they precede."""
    found: list[str] = []
    current: list[str] = []
    quoted = False
    for line in sql.splitlines():
        current.append(line)
        quoted ^= line.count("$$") % 2 == 1
        code = line.strip()
        if not quoted and code.endswith(";") and not code.startswith("--"):
            found.append("\n".join(current).strip())
            current = []
    if any(r.strip() and not r.strip().startswith("--") for r in current):
        found.append("\n".join(current).strip())  # the last statement without its ';'
    return found


async def _run_alone(conn: Any, statement: str, lock_timeout_s: float) -> None:
    """One statement of a no-transaction file. A plain DROP INDEX (an invalid index's) or
    ALTER TABLE queues every insert behind itself while it waits for a long transaction: it
    gives up after the lock timeout instead. The timeout is set for the statement alone and
    reset after it (the caller's connection keeps its own)."""
    if re.search(r"\bCONCURRENTLY\b", statement, re.IGNORECASE):
        await conn.execute(statement)
        return
    await conn.execute(f"SET lock_timeout = {int(lock_timeout_s * 1000)}")
    try:
        await conn.execute(statement)
    finally:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.execute("RESET lock_timeout")


async def _record(conn: Any, m: Migration) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
        m.version,
        m.name,
        m.recorded_sha256,
    )
