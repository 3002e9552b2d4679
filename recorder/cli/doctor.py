"""`verbatim doctor`: everything that is wrong with an installation, each with a fix in words.

Built on `verbatim health`'s checks (ARI, the fallback prompt, PostgreSQL, spool, archive) and
more: ARI credentials, the app registered, the dialplan's contexts (through AMI's ShowDialPlan
when `ami:` is configured: ARI cannot list the dialplan), the FastAGI port of hook mode, the
spool's owner and permissions, free space, the schema against the migrations this version ships,
the policy, every prompt the policy can play (GET /sounds/{id} under its media prefix) and the
clock skew between Asterisk and this host (GET /asterisk/ping carries Asterisk's time). A check
that depends on a failed one is not run and says so (ok None); only failed checks make the exit
status 1.
"""

from __future__ import annotations

import asyncio
import grp
import hashlib
import os
import pwd
import re
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import asyncpg

from recorder.ari.client import AriClient, AriError
from recorder.ari.events import parse_timestamp
from recorder.cli.ami import AmiError, existing_contexts
from recorder.cli.health import FALLBACK_SOUND
from recorder.common.resources import shipped
from recorder.config import Config, ConfigError
from recorder.db.migrate import DEFAULT_DIRECTORY, load
from recorder.policy.announce import prompt_id
from recorder.policy.model import MODES, Policy
from recorder.service.app import ari_client
from recorder.storage.crypt import CryptError, keyring_for
from recorder.storage.objects import SCHEME, s3_store
from recorder.storage.space import check_dir

MAX_SKEW_S: Final = 2.0  # beyond this, event times and file times disagree visibly
TIMEOUT_S: Final = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (the detail says why)
    detail: str
    fix: str | None = None


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def skipped(name: str, why: str) -> Check:
    return Check(name, None, why)


async def diagnose(config: Config) -> list[Check]:
    """Every check, in the order an admin would fix them."""
    checks: list[Check] = []
    async with aiohttp.ClientSession() as session:
        client = ari_client(session, config, min(config.ari.request_timeout_s, TIMEOUT_S))
        try:
            checks += await _ari(client, config)
            ari_ok = all(c.ok for c in checks)
            for ari_check in (_application, _prompts, _clock):
                checks.append(await ari_check(client, config) if ari_ok else
                              skipped(ari_check.__name__[1:], "not checked: ARI is not usable"))
        finally:
            await client.close()
    checks.append(await _dialplan(config))
    checks.append(await _fastagi(config))
    checks += _storage(config)
    checks.append(await _object_store(config))
    checks.append(_encryption(config))
    checks += await _database(config)
    checks.append(_policy_check(config))
    order = {name: i for i, name in enumerate(NAMES)}
    return sorted(checks, key=lambda c: order[c.name])


NAMES: Final = ("ari", "credentials", "application", "dialplan", "fastagi", "spool", "archive",
                "free_space", "object_store", "encryption", "database", "migrations", "policy",
                "prompts", "clock")


async def _ari(client: AriClient, config: Config) -> list[Check]:
    url = config.ari.url
    try:
        info = await client.info()
    except AriError as exc:
        if exc.status == 401:
            return [passed("ari", f"Asterisk answers at {url}"), failed(
                "credentials", f"Asterisk refused user {config.ari.username!r} (401)",
                f"give ari.username and VERBATIM_ARI_PASSWORD the user and password of an "
                f"ari.conf user ([{config.ari.username}] type=user, password=...), then "
                "`asterisk -rx 'module reload res_ari'`")]
        why = f"cannot reach ARI at {url}: {exc}" if exc.status == 0 else f"{url}: {exc}"
        return [failed("ari", why,
                       "start Asterisk, enable its HTTP server (http.conf: enabled=yes, bindaddr "
                       "and bindport matching ari.url) and ARI (ari.conf: enabled=yes; "
                       "res_ari loaded), and check ari.url"),
                skipped("credentials", "not checked: ARI is not reachable")]
    version = info.get("system", {}).get("version", "?")
    return [passed("ari", f"Asterisk {version} at {url}"),
            passed("credentials", f"user {config.ari.username!r} accepted")]


async def _application(client: AriClient, config: Config) -> Check:
    app = config.ari.app
    try:
        await client.request("GET", f"/applications/{quote(app, safe='')}")
    except AriError as exc:
        if exc.status != 404:
            return failed("application", str(exc), "see the ari check")
        return failed("application", f"no app {app!r} is registered: no recorder is connected "
                      "to this Asterisk, so Stasis() fails and calls take the dialplan fallback",
                      "start the daemon (`systemctl start verbatim` or `verbatim run`) and read "
                      "its log; ari.app must be the name the dialplan's Stasis() uses")
    return passed("application", f"app {app!r} registered (a recorder is connected)")


def _prompt_media(policy: Policy) -> list[str]:
    """Every media URI the policy can play: each mode in each language it may choose."""
    a = policy.announcements
    languages = sorted({a.language, *a.languages.values()})
    return [a.media_prefix + prompt_id(mode, lang) for lang in languages for mode in MODES]


async def _prompts(client: AriClient, config: Config) -> Check:
    try:
        policy = _policy(config)
    except ConfigError:
        return skipped("prompts", "not checked: the policy is not valid")
    media = [*_prompt_media(policy), f"sound:{FALLBACK_SOUND}"]
    not_sounds = [m for m in media if not m.startswith("sound:")]
    if not_sounds:
        return failed("prompts", f"announcements.media_prefix gives {not_sounds[0]!r}, not a "
                      "sound: URI Asterisk's sounds folder can hold",
                      'set announcements.media_prefix to "sound:verbatim/" in the policy')
    missing: list[str] = []
    for uri in media:
        try:
            await client.sound(uri.removeprefix("sound:"))
        except AriError as exc:
            if exc.status != 404:
                return failed("prompts", str(exc), "see the ari check")
            missing.append(uri.removeprefix("sound:"))
    if missing:
        folder = policy.announcements.media_prefix.removeprefix("sound:").strip("/") or "."
        return failed(
            "prompts", f"Asterisk has no sound {', '.join(missing)} (the policy plays "
            f"{policy.announcements.media_prefix}<prompt>; the fallback plays {FALLBACK_SOUND})",
            "install the prompts where Asterisk looks, in the folder the media prefix names: "
            f"`verbatim prompts install -c {config.path or 'verbatim.yaml'} --sounds-dir "
            f"/var/lib/asterisk/sounds/{policy.announcements.language}/{folder}` (once per "
            "language the policy uses)")
    return passed("prompts", f"{len(media)} sounds present ({', '.join(m[6:] for m in media)})")


async def _clock(client: AriClient, config: Config) -> Check:
    before = time.time()
    try:
        ping = await client.request("GET", "/asterisk/ping")
        theirs = parse_timestamp(str(ping["timestamp"])).timestamp()
    except (AriError, KeyError, ValueError, TypeError) as exc:
        return failed("clock", f"cannot read Asterisk's time (GET /asterisk/ping): {exc}",
                      "see the ari check")
    after = time.time()
    skew = theirs - (before + after) / 2
    side = "ahead of" if skew > 0 else "behind"
    detail = f"Asterisk's clock is {abs(skew):.1f} s {side} this host's"
    if abs(skew) > MAX_SKEW_S + (after - before):
        return failed("clock", detail,
                      "synchronise both hosts' clocks (chrony or systemd-timesyncd: "
                      "`timedatectl set-ntp true`; `timedatectl` shows the state): call and "
                      "recording times come from both")
    return passed("clock", detail)


def shipped_contexts(hooks: bool) -> list[str]:
    """The contexts of the shipped dialplan snippets Asterisk must have."""
    names = ["verbatim.conf", *(["verbatim-hooks.conf"] if hooks else [])]
    text = "".join((shipped("dialplan") / name).read_text(encoding="utf-8") for name in names)
    return re.findall(r"^\[([^\]]+)\]", text, re.MULTILINE)


async def _dialplan(config: Config) -> Check:
    ami = config.ami
    if ami.username is None:
        return skipped("dialplan", "could not check: ARI cannot list the dialplan; give doctor an "
                       "AMI user (ami.username, VERBATIM_AMI_SECRET) to ask ShowDialPlan")
    wanted = shipped_contexts(config.hooks.enabled)
    try:
        found = await existing_contexts(ami, wanted, TIMEOUT_S)
    except AmiError as exc:
        return failed("dialplan", str(exc),
                      f"manager.conf: enabled = yes, port = {ami.port}, a user "
                      f"[{ami.username}] with secret = (VERBATIM_AMI_SECRET) and "
                      "write = reporting; then `asterisk -rx 'manager reload'`")
    missing = [c for c in wanted if not found[c]]
    if missing:
        files = "verbatim.conf" + (" and verbatim-hooks.conf" if config.hooks.enabled else "")
        return failed("dialplan", f"Asterisk's dialplan lacks {', '.join(missing)}",
                      f"copy {files} (from {shipped('dialplan')}) to /etc/asterisk/, add "
                      "`#include verbatim.conf` (and the hooks file) to extensions.conf, then "
                      "`asterisk -rx 'dialplan reload'`")
    return passed("dialplan", f"{len(wanted)} contexts present ({', '.join(wanted)})")


async def _fastagi(config: Config) -> Check:
    hooks = config.hooks
    if not hooks.enabled:
        return passed("fastagi", "hook mode off (hooks.enabled: false)")
    where = f"{hooks.host}:{hooks.port}"
    try:
        async with asyncio.timeout(TIMEOUT_S):
            _, writer = await asyncio.open_connection(hooks.host, hooks.port)
        writer.close()
    except (OSError, TimeoutError) as exc:
        return failed("fastagi", f"nothing answers at {where} ({exc}): the record hook fails and "
                      "hooked calls take the MixMonitor fallback",
                      "start the daemon (`systemctl start verbatim`; hooks.enabled starts the "
                      f"FastAGI server) and make the AGI() URL in verbatim-hooks.conf agi://{where}")
    return passed("fastagi", f"FastAGI listens at {where}")


def _owner(path: Path) -> str:
    st = path.stat()
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} mode {st.st_mode & 0o7777:o}"


def _me() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _storage(config: Config) -> list[Check]:
    storage = config.storage
    out: list[Check] = []
    spool = storage.spool_dir
    dirs = {"archive": storage.archive_dir, **({"spool": spool} if spool else {})}
    health = {key: check_dir(path, 0) for key, path in dirs.items()}
    if spool is None:
        out.append(passed("spool", "not used: finished recordings are fetched over ARI"))
    elif not spool.is_dir():
        out.append(failed(
            "spool", health["spool"].error or f"{spool} is not a directory",
            "storage.spool_dir must be the folder Asterisk records into (astspooldir/recording, "
            "on this host); if Asterisk runs elsewhere, set storage.spool_dir: null to fetch "
            "recordings over ARI"))
    elif not health["spool"].writable or not os.access(spool, os.R_OK | os.X_OK):
        out.append(failed(
            "spool", f"{health['spool'].error or f'{spool} is not readable'} ({_owner(spool)})",
            f"the daemon runs as {_me()} and must read and delete what Asterisk records there: "
            f"add it to Asterisk's group (`usermod -aG asterisk {_me()}`) and make "
            f"{spool} group-writable (`chmod 2770 {spool}`), or set storage.spool_dir: null "
            "to fetch recordings over ARI"))
    else:
        out.append(passed("spool", f"{spool} readable and writable ({_owner(spool)})"))
    archive = storage.archive_dir
    if not health["archive"].writable:
        out.append(failed("archive", health["archive"].error or str(archive),
                          f"create it for the daemon's user: `install -d -o {_me()} -m 0750 "
                          f"{archive}` (and list it in the unit's ReadWritePaths=)"))
    else:
        out.append(passed("archive", f"{archive} writable ({_owner(archive)})"))
    low = [f"{dirs[k]} has {h.free_mb} MB" for k, h in health.items()
           if h.free_mb is not None and h.free_mb < storage.min_free_mb]
    if low:
        out.append(failed("free_space", f"{'; '.join(low)} free, below storage.min_free_mb "
                          f"({storage.min_free_mb} MB)",
                          "free space there (old recordings go by the retention policy), or "
                          "move the archive to a larger disk"))
    else:
        free = ", ".join(f"{k} {h.free_mb} MB" for k, h in health.items() if h.free_mb is not None)
        out.append(passed("free_space", f"{free or 'not measured'} free "
                          f"(minimum {storage.min_free_mb} MB)"))
    return out


async def _object_store(config: Config) -> Check:
    """storage.s3's bucket takes, confirms and deletes an object as the uploads will."""
    s3 = config.storage.s3
    if s3 is None:
        return passed("object_store", "not used: storage.backend is local")
    probe = f"{SCHEME}{s3.bucket}/verbatim-doctor/{uuid.uuid4().hex}"
    body = b"verbatim doctor probe"
    sha = hashlib.sha256(body).hexdigest()
    try:
        async with s3_store(s3) as store:
            with tempfile.NamedTemporaryFile() as f:
                f.write(body)
                f.flush()
                await asyncio.wait_for(store.put(probe, Path(f.name), sha), TIMEOUT_S * 2)
            confirmed = await asyncio.wait_for(store.confirm(probe, sha, len(body)), TIMEOUT_S)
            await asyncio.wait_for(store.delete_many([probe]), TIMEOUT_S)
    except Exception as exc:  # unreachable, refused, denied: all say what to fix alike
        return failed("object_store", f"{s3.endpoint or 'AWS S3'} bucket {s3.bucket}: "
                      f"{type(exc).__name__}: {exc}",
                      "check storage.s3 (endpoint, bucket, region) and its keys "
                      "(VERBATIM_S3_ACCESS_KEY, VERBATIM_S3_SECRET_KEY); the bucket must exist "
                      "and the keys allow GetObject, PutObject, DeleteObject and ListBucket on "
                      "it")  # fmt: skip
    if not confirmed:
        return failed("object_store", f"bucket {s3.bucket} did not keep a probe's bytes",
                      "the store must keep what it takes and report it: check its health")
    return passed("object_store", f"bucket {s3.bucket} at {s3.endpoint or 'AWS S3'} takes, "
                  "confirms and deletes recordings")


def _encryption(config: Config) -> Check:
    if config.storage.encryption is None:
        return passed("encryption", "not configured: recordings are kept as recorded")
    try:
        keyring = keyring_for(config.storage.encryption)
    except CryptError as exc:
        return failed("encryption", str(exc), "point storage.encryption at the master key "
                      "(`verbatim keys new` makes one; a lost key cannot be recovered)")
    assert keyring is not None
    return passed("encryption", f"master key {keyring.current.key_id!r} readable "
                  f"(unwraps with: {', '.join(keyring.key_ids)})")


async def _database(config: Config) -> list[Check]:
    try:
        conn = await asyncpg.connect(config.database.dsn.reveal(), timeout=TIMEOUT_S)
    except Exception as exc:  # any failure to reach PostgreSQL is the answer, not a crash
        return [failed("database", f"cannot connect: {type(exc).__name__}: {exc}",
                       "check VERBATIM_DATABASE_DSN (host, port, user, password, database), "
                       "that PostgreSQL runs, and that pg_hba.conf lets this host in"),
                skipped("migrations", "not checked: no database")]
    try:
        return [passed("database", "PostgreSQL answers"), await _migrations(conn, config)]
    finally:
        await conn.close()


async def _migrations(conn: Any, config: Config) -> Check:
    shipped_ = {m.version: m for m in load(DEFAULT_DIRECTORY)}
    applied: dict[int, Any] = {}
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        rows = await conn.fetch("SELECT version, name, sha256 FROM schema_migrations")
        applied = {r["version"]: r for r in rows}
    migrate = (f"run `verbatim migrate -c {config.path or 'verbatim.yaml'}` (online; README, "
               "Upgrades)")
    pending = [m.name for v, m in sorted(shipped_.items()) if v not in applied]
    newer = [r["name"] for v, r in sorted(applied.items()) if v not in shipped_]
    changed = [m.name for v, m in sorted(shipped_.items())
               if v in applied and not m.applied_as(applied[v]["sha256"])]
    if changed:
        return failed("migrations", f"applied migrations differ from the shipped files: "
                      f"{', '.join(changed)}", "reinstall this version's wheel unchanged")
    if pending:
        return failed("migrations", f"{len(pending)} not applied: {', '.join(pending)}", migrate)
    # Migrations only add, so an older version runs on a newer schema: a rollback (README).
    later = f"; also {', '.join(newer)} from a newer Verbatim (a rollback?)" if newer else ""
    return passed("migrations", f"schema up to date ({len(shipped_)} migrations{later})")


def _policy(config: Config) -> Policy:
    from recorder.cli.policy import policy_for  # the CLI's own reading of the policy

    return policy_for(config, None)


def _policy_check(config: Config) -> Check:
    try:
        policy = _policy(config)
    except ConfigError as exc:  # PolicyError included: it names file, line and key
        return failed("policy", str(exc), "correct the policy file at that line; `verbatim "
                      "explain --policy FILE ...` shows what it decides")
    where = f"{policy.path}, {len(policy.rules)} rules" if policy.path else "built-in policy"
    return passed("policy", f"valid ({where})")


def summary(checks: list[Check]) -> dict[str, Any]:
    return {"ok": not any(c.ok is False for c in checks), "checks": [asdict(c) for c in checks]}


def render(checks: list[Check]) -> str:
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    lines: list[str] = []
    for c in checks:
        lines.append(f"{marks[c.ok]}  {c.name:<12} {c.detail}")
        if c.fix:
            lines.append(f"{'':18}fix: {c.fix}")
    problems = sum(c.ok is False for c in checks)
    lines.append(f"{problems} problem(s)" if problems else "no problems found")
    return "\n".join(lines) + "\n"

