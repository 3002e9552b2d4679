"""`verbatim verify`: prove the archive and its custody chain are as they were written.

Four checks, each reporting every problem it finds (nothing stops at the first):
- broken_link: a custody row whose hash, recomputed here from its fields, is not the one stored,
  or whose `prev_sha256` is not the previous row's hash, a gap in its sequence, a chain head
  that is not its last row, or a played/downloaded access_log row changed or gone;
- mismatch: a file whose SHA-256 is not its row's, or a row whose hash is not the one its
  recording was filed with (the custody chain's 'filed' event); for an encrypted recording
  (storage.encryption), a file whose ciphertext SHA-256 is not the one it was placed with, or
  whose plaintext (decrypted here, when the master key is configured) does not decrypt or is not
  the recording's SHA-256;
- missing_file: a filed recording whose file is not in the archive, or whose row is gone
  too with no purge to say so (the custody chain's 'filed' event remembers it);
- orphan_file: a file in the archive that no recording of this server names.

Memory stays flat: chains are read with a cursor, and files are checked by merging the store's
sorted listing with the recordings ordered the same way. `since` limits every check to what
happened (chain rows) or was recorded (archive days) since then; `sample` re-hashes only that
share of the files (each is still checked for presence).
"""

from __future__ import annotations

import io
import posixpath
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from recorder.keeping.custody import GENESIS, access_digest, row_hash
from recorder.storage.crypt import CryptError, Keyring, WrappedKey
from recorder.storage.store import RecordingStore

KINDS: Final = ("broken_link", "mismatch", "missing_file", "orphan_file")
_CHAIN_ROWS = """
    SELECT c.chain, c.seq, c.at, c.kind, c.call_id, c.asterisk_id, c.recording_name, c.hold_id,
           c.access_id, c.subject_sha256, c.detail::text AS detail, c.prev_sha256, c.sha256,
           a.id AS a_id, a.at AS a_at, a.user_name AS a_user_name, a.role AS a_role,
           a.via AS a_via, a.action AS a_action, a.call_id AS a_call_id,
           a.asterisk_id AS a_asterisk_id, a.recording_name AS a_recording_name,
           a.detail::text AS a_detail, a.remote AS a_remote, a.user_agent AS a_user_agent
    FROM custody c LEFT JOIN access_log a ON a.id = c.access_id
    WHERE c.chain = $1 AND c.seq >= $2 AND c.seq <= $3 ORDER BY c.seq
"""
# Each file the office's filed recordings name, with the hash its custody event gave it: the
# recording's own (an original: 'filed'; a compact copy that replaced it: 'compacted', and then
# the original's kept hash must still be the filed one), a kept original's compact copy, and a
# dropped original not deleted yet (migration 0011); an encrypted recording's wrapped key and
# ciphertext hash with it (migration 0010: compact copies are never made of encrypted files).
_EVENT = """(SELECT f.subject_sha256 FROM custody f WHERE f.asterisk_id = r.asterisk_id
            AND f.recording_name = r.name AND f.kind = '{}' ORDER BY f.chain, f.seq LIMIT 1)"""
_FILED, _COMPACTED = _EVENT.format("filed"), _EVENT.format("compacted")
_PURGING = """EXISTS (SELECT 1 FROM tombstones t WHERE t.status = 'purging'
              AND t.asterisk_id = r.asterisk_id AND t.recording_name = r.name) AS purging"""
_NO_KEY = "NULL::text, NULL::bytea, NULL::text"
_FILES = f"""
    SELECT * FROM (
    SELECT r.name, r.call_id, r.path, r.sha256, k.key_id, k.wrapped_key, k.stored_sha256,
           {_PURGING},
           CASE WHEN r.original_sha256 IS NULL THEN {_FILED}
                WHEN r.original_sha256 IS DISTINCT FROM {_FILED} THEN {_FILED}
                ELSE {_COMPACTED} END AS filed_sha256
    FROM recordings r
    LEFT JOIN recording_keys k ON k.call_id = r.call_id AND k.name = r.name
    WHERE r.asterisk_id = $1 AND r.status = 'filed' AND r.path >= $2
    UNION ALL
    SELECT r.name, r.call_id, r.compact_path, r.compact_sha256, {_NO_KEY}, {_PURGING},
           {_COMPACTED}
    FROM recordings r
    WHERE r.asterisk_id = $1 AND r.status = 'filed' AND r.compact_path IS NOT NULL
      AND r.compact_path <> r.path AND r.compact_path >= $2
    UNION ALL
    SELECT r.name, r.call_id, r.original_path, r.original_sha256, {_NO_KEY}, {_PURGING},
           {_FILED}
    FROM recordings r
    WHERE r.asterisk_id = $1 AND r.status = 'filed' AND r.original_path IS NOT NULL
      AND r.original_path >= $2
    ) files ORDER BY path COLLATE "C"
"""  # noqa: S608 (constant SQL)


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    where: str  # "chain pbx1 seq 12", a file's key
    detail: str


@dataclass
class VerifyReport:
    chains: int = 0
    links: int = 0  # custody rows checked
    files: int = 0  # recordings checked for presence
    hashed: int = 0  # files re-hashed
    bytes_hashed: int = 0
    heads: dict[str, str] = field(default_factory=dict)  # chain -> "seq:sha256", to note down
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {k: sum(p.kind == k for p in self.problems) for k in KINDS}

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "chains": self.chains, "links": self.links, "files": self.files,
                "hashed": self.hashed, "bytes_hashed": self.bytes_hashed, "heads": self.heads,
                "problems": self.counts(),
                "details": [p.__dict__ for p in self.problems]}  # fmt: skip


async def verify(
    pool: Any, store: RecordingStore, asterisk_id: str, *, since: datetime | None = None,
    sample_percent: int = 100, rng: random.Random | None = None, keyring: Keyring | None = None,
) -> VerifyReport:  # fmt: skip
    """`keyring`: storage.encryption's master keys, to check encrypted files' plaintext too
    (without, their ciphertext's hash only)."""
    report = VerifyReport()
    await verify_chains(pool, report, since)
    await verify_files(pool, store, asterisk_id, report, since, sample_percent, rng, keyring)
    return report


async def verify_chains(pool: Any, report: VerifyReport, since: datetime | None) -> None:
    heads = {r["chain"]: (r["seq"], r["sha256"])
             for r in await pool.fetch("SELECT chain, seq, sha256 FROM custody_heads")}  # fmt: skip
    chains = sorted(set(heads) | {r["chain"] for r in await pool.fetch(
        "SELECT DISTINCT chain FROM custody")})  # fmt: skip
    for chain in chains:
        report.chains += 1
        start = 1
        if since is not None:
            first = await pool.fetchval(
                "SELECT min(seq) FROM custody WHERE chain = $1 AND at >= $2", chain, since)
            start = max(1, (first or heads.get(chain, (0, ""))[0] + 1) - 1)  # one row before
        head = heads.get(chain)
        # Up to the head as read: rows appended meanwhile are the next run's.
        last_seq, last_hash = await _walk(pool, chain, start, head[0] if head else 2**62,
                                          report)  # fmt: skip
        where = f"chain {chain} head"
        if head is None:
            report.problems.append(Problem("broken_link", where, "the chain has no head row"))
        elif head != (last_seq, last_hash):
            report.problems.append(Problem(
                "broken_link", where, f"the head says seq {head[0]} {head[1][:12]}…, the last row "
                f"is seq {last_seq} {last_hash[:12]}…"))  # fmt: skip
        if head is not None:
            report.heads[chain] = f"{head[0]}:{head[1]}"


async def _walk(
    pool: Any, chain: str, start: int, stop: int, report: VerifyReport
) -> tuple[int, str]:
    """Check the rows of `chain` from seq `start`; returns the last (seq, hash) seen. With a
    `start` above 1, that first row is the anchor: its own hash is checked, not its link."""
    prev_seq, prev_hash = start - 1, GENESIS if start == 1 else None
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for row in conn.cursor(_CHAIN_ROWS, chain, start, stop, prefetch=1000):
            report.links += 1
            where = f"chain {chain} seq {row['seq']}"
            if row["seq"] != prev_seq + 1:
                report.problems.append(Problem(
                    "broken_link", where, f"rows {prev_seq + 1}..{row['seq'] - 1} are missing"))
            elif prev_hash is not None and row["prev_sha256"] != prev_hash:
                report.problems.append(Problem(
                    "broken_link", where, "prev_sha256 is not the previous row's hash"))
            if row_hash(row["prev_sha256"], row) != row["sha256"]:
                report.problems.append(Problem(
                    "broken_link", where, f"the row was changed after it was written "
                    f"({row['kind']} {row['recording_name'] or row['hold_id'] or ''})"))
            if row["access_id"] is not None:
                _check_access(row, where, report)
            prev_seq, prev_hash = row["seq"], row["sha256"]
    return prev_seq, prev_hash or ""


def _check_access(row: Any, where: str, report: VerifyReport) -> None:
    if row["a_id"] is None:
        report.problems.append(Problem(
            "broken_link", where, f"access_log row {row['access_id']} ({row['kind']}) is gone"))
    elif access_digest({k.removeprefix("a_"): v for k, v in row.items()
                        if k.startswith("a_")}) != row["subject_sha256"]:  # fmt: skip
        report.problems.append(Problem(
            "broken_link", where, f"access_log row {row['access_id']} was changed"))


async def verify_files(
    pool: Any, store: RecordingStore, asterisk_id: str, report: VerifyReport,
    since: datetime | None, sample_percent: int = 100, rng: random.Random | None = None,
    keyring: Keyring | None = None,
) -> None:  # fmt: skip
    rng = rng or random.Random()  # noqa: S311 (a sample, not a secret)
    # missing or orphaned as the run saw them, with the recording's name: asked again at its end
    doubts: list[tuple[Problem, str]] = []
    first = store.day_key(since) if since is not None else ""
    keys = store.keys(first or None).__aiter__()
    key = await anext(keys, None)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for row in conn.cursor(_FILES, asterisk_id, first, prefetch=1000):
            path = row["path"]
            if not store.owns(path):
                report.problems.append(Problem("missing_file", path,
                                               f"{row['name']}: not in this archive"))
                continue
            while key is not None and key < path:
                doubts.append((Problem("orphan_file", key, "no recording names it"), _name(key)))
                key = await anext(keys, None)
            report.files += 1
            if key != path:
                if not row["purging"]:  # a purge deleted it and will drop the row
                    doubts.append((Problem("missing_file", path, row["name"]), row["name"]))
                continue
            key = await anext(keys, None)
            if row["filed_sha256"] is not None and row["filed_sha256"] != row["sha256"]:
                report.problems.append(Problem(
                    "mismatch", path, f"{row['name']}: the row's SHA-256 is not the one it was "
                    "filed with"))  # fmt: skip
            if sample_percent >= 100 or rng.random() * 100 < sample_percent:
                digest = await store.digest(path)
                report.hashed += 1
                if digest is None:  # listed, gone since
                    doubts.append((Problem("missing_file", path, row["name"]), row["name"]))
                    continue
                report.bytes_hashed += digest.size
                if row["key_id"] is not None:
                    await _check_sealed(store, row, digest.sha256, keyring, report)
                elif digest.sha256 != row["sha256"]:
                    report.problems.append(Problem(
                        "mismatch", path, f"{row['name']}: SHA-256 {digest.sha256[:12]}…, filed "
                        f"as {row['sha256'][:12]}…"))  # fmt: skip
    while key is not None:
        doubts.append((Problem("orphan_file", key, "no recording names it"), _name(key)))
        key = await anext(keys, None)
    report.problems += await _still_so(pool, store, asterisk_id, doubts)
    for row in await pool.fetch(_UNACCOUNTED, asterisk_id, since):
        report.problems.append(Problem(
            "missing_file", row["path"] or row["recording_name"],
            f"{row['recording_name']}: filed, and its row is gone with no purge that says so"))


# Recordings filed (the custody chain says so) whose row is gone with no purge to say why:
# the row and the file deleted together leave nothing for the file check to miss. A 'filed'
# event is on its office's chain: `chain` lets custody_at_idx serve `since`.
_UNACCOUNTED = """
    SELECT f.recording_name, f.detail->>'path' AS path FROM custody f
    WHERE f.chain = $1 AND f.asterisk_id = $1 AND f.kind = 'filed'
      AND ($2::timestamptz IS NULL OR f.at >= $2)
      AND NOT EXISTS (SELECT 1 FROM recordings r
                      WHERE r.asterisk_id = f.asterisk_id AND r.name = f.recording_name)
      AND NOT EXISTS (SELECT 1 FROM custody p WHERE p.kind = 'purged'
                      AND p.asterisk_id = f.asterisk_id AND p.recording_name = f.recording_name)
    ORDER BY f.recording_name
"""
# Where a listed file's recording row is, now, by the recording's name
_NOW = """
    SELECT r.name, r.status, r.path, r.compact_path, r.original_path, EXISTS (
               SELECT 1 FROM tombstones t WHERE t.status = 'purging'
               AND t.asterisk_id = r.asterisk_id AND t.recording_name = r.name) AS purging
    FROM recordings r WHERE r.asterisk_id = $1 AND r.name = ANY($2::text[])
"""


def _name(key: str) -> str:
    """The recording a file's key is of: its name, the extension aside (a compact copy's too)."""
    return posixpath.splitext(posixpath.basename(key))[0]


async def _still_so(pool: Any, store: RecordingStore, asterisk_id: str,
                    doubts: list[tuple[Problem, str]]) -> list[Problem]:  # fmt: skip
    """Of the files found missing or orphaned, those that still are. The rows were read in
    one snapshot taken at the start, the files as the listing reached them, often minutes
    later, while the daemon filed, uploads moved and the purge deleted: each is asked again,
    so that none of those is reported (a daily run beside live calls would otherwise raise
    errors that mean nothing)."""
    if not doubts:
        return []
    names = sorted({name for _, name in doubts})
    rows = {r["name"]: r for r in await pool.fetch(_NOW, asterisk_id, names)}
    still = []
    for problem, name in doubts:
        row = rows.get(name)
        named = row is not None and row["status"] == "filed" and problem.where in (
            row["path"], row["compact_path"], row["original_path"])
        if problem.kind == "orphan_file":
            # filed meanwhile (its row now names it), or deleted meanwhile (purged)
            if named or await store.digest(problem.where) is None:
                continue
        elif (not named or (row is not None and row["purging"])
              or await store.digest(problem.where) is not None):
            continue  # moved, purged or being purged meanwhile, or there after all
        still.append(problem)
    return still



async def _check_sealed(store: RecordingStore, row: Any, stored_sha256: str,
                        keyring: Keyring | None, report: VerifyReport) -> None:  # fmt: skip
    """An encrypted file: its ciphertext's hash, then (with the master key) its plaintext's."""
    path, name = row["path"], row["name"]
    if row["stored_sha256"] is not None and stored_sha256 != row["stored_sha256"]:
        report.problems.append(Problem(
            "mismatch", path, f"{name}: ciphertext SHA-256 {stored_sha256[:12]}…, placed as "
            f"{row['stored_sha256'][:12]}…"))  # fmt: skip
    if keyring is None:
        return
    try:
        key = keyring.data_key(WrappedKey(row["key_id"], bytes(row["wrapped_key"])),
                               row["call_id"], name)  # fmt: skip
        sealed = io.BytesIO(b"".join([c async for c in store.read(path)]))  # a few MB
        plain_sha, _ = key.plain_digest(sealed)
    except CryptError as exc:
        report.problems.append(Problem("mismatch", path, f"{name}: {exc}"))
        return
    if plain_sha != row["sha256"]:
        report.problems.append(Problem(
            "mismatch", path, f"{name}: plaintext SHA-256 {plain_sha[:12]}…, filed as "
            f"{row['sha256'][:12]}…"))  # fmt: skip
