"""load_config: the schema, walked section by section; the first problem raises ConfigError."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

import yaml

from recorder.common.direction import DIRECTIONS
from recorder.config import _checks as check
from recorder.config._reader import REQUIRED, Invalid, Section, kind, line_of, parse_yaml
from recorder.config.model import (
    COMPACT_FORMATS,
    ENV_AMI_SECRET,
    ENV_ARI_PASSWORD,
    ENV_ARI_URL,
    ENV_ARI_USERNAME,
    ENV_DATABASE_DSN,
    ENV_S3_ACCESS_KEY,
    ENV_S3_SECRET_KEY,
    LOG_FORMATS,
    LOG_LEVELS,
    ON_CRITICAL,
    RECORDING_FORMATS,
    STORAGE_BACKENDS,
    AmiConfig,
    AriConfig,
    AsteriskConfig,
    CallsConfig,
    CompactConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    DialStrings,
    EncryptionConfig,
    HooksConfig,
    HttpConfig,
    KeepingConfig,
    LoggingConfig,
    MasterKeySource,
    MetricsConfig,
    S3Config,
    Secret,
    StorageConfig,
)

_T = TypeVar("_T")

# The keys each section may have: anything else is a typo, reported with a suggestion.
KEYS: Final[dict[str, tuple[str, ...]]] = {
    "": ("asterisk", "ari", "database", "storage", "calls", "logging", "http", "hooks",
         "metrics", "ami", "keeping"),
    "keeping": ("purge_at", "purge_batch", "verify_every_s", "verify_sample_percent"),
    "asterisk": ("label",),
    "ari": (
        "url",
        "username",
        "password",
        "app",
        "reconnect_initial_s",
        "reconnect_max_s",
        "request_timeout_s",
    ),
    "database": ("dsn", "pool_min", "pool_max"),
    "storage": (
        "spool_dir", "archive_dir", "format", "min_free_mb", "spool_settle_s", "spool_sweep_s",
        "journal_dir", "journal_max_mb", "low_free_mb", "on_critical", "backend", "s3",
        "encryption", "compact",
    ),
    "storage.encryption": ("enabled", "key_id", "master_key_file", "master_key_env",
                           "previous_keys"),
    "storage.compact": ("format", "bitrate", "keep_original"),
    "storage.s3": ("endpoint", "bucket", "region", "access_key", "secret_key", "retry_max_s",
                   "multipart_threshold_mb", "part_size_mb"),
    "calls": (
        "dial_timeout_s",
        "dial_method",
        "dial_strings",
        "consent_prompt",
        "ringback",
        "default_region",
        "outside_line_prefix",
        "extensions",
        "departments",
        "ring_groups",
        "controls",
        "policy_file",
    ),
    "calls.controls": ("pause", "resume", "start", "stop"),
    "hooks": ("enabled", "host", "port", "allow_non_loopback", "reply_timeout_s"),
    "metrics": ("enabled", "host", "port", "allow_non_loopback", "health_log_s"),
    "ami": ("host", "port", "username", "secret"),
    "calls.dial_strings": DIRECTIONS,
    "logging": ("level", "format"),
    "http": (
        "enabled",
        "host",
        "port",
        "tls_cert",
        "tls_key",
        "secure_cookies",
        "session_idle_s",
        "session_max_s",
    ),
}


def _default(cls: type[Any], name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _read_asterisk(s: Section) -> AsteriskConfig:
    return AsteriskConfig(label=s.text("label", _default(AsteriskConfig, "label"), check.non_empty))


def _read_ari(s: Section) -> AriConfig:
    d = AriConfig
    initial = s.seconds("reconnect_initial_s", _default(d, "reconnect_initial_s"))
    maximum = s.seconds("reconnect_max_s", _default(d, "reconnect_max_s"))
    if maximum < initial:
        key = "reconnect_max_s" if "reconnect_max_s" in s.entries else "reconnect_initial_s"
        message = (
            f"reconnect_max_s ({maximum:g}) must be at least reconnect_initial_s ({initial:g})"
        )
        raise s.error(key, message)
    url = s.text("url", _default(d, "url"), check.ari_url, env_var=ENV_ARI_URL)
    username = s.text("username", REQUIRED, check.username, env_var=ENV_ARI_USERNAME)
    password = s.text("password", REQUIRED, check.non_empty, env_var=ENV_ARI_PASSWORD, secret=True)
    return AriConfig(
        url=url,
        username=username,
        password=Secret(password),
        app=s.text("app", _default(d, "app"), check.app_name),
        reconnect_initial_s=initial,
        reconnect_max_s=maximum,
        request_timeout_s=s.seconds("request_timeout_s", _default(d, "request_timeout_s")),
    )


def _read_database(s: Section) -> DatabaseConfig:
    dsn = s.text("dsn", REQUIRED, check.dsn, env_var=ENV_DATABASE_DSN, secret=True)
    pool_min = s.integer("pool_min", _default(DatabaseConfig, "pool_min"), 0)
    pool_max = s.integer("pool_max", _default(DatabaseConfig, "pool_max"), 1)
    if pool_max < pool_min:
        key = "pool_max" if "pool_max" in s.entries else "pool_min"
        raise s.error(key, f"pool_max ({pool_max}) must be at least pool_min ({pool_min})")
    return DatabaseConfig(dsn=Secret(dsn), pool_min=pool_min, pool_max=pool_max)


def _read_storage(s: Section) -> StorageConfig:
    d = StorageConfig
    spool = s.optional_text(
        "spool_dir", str(_default(d, "spool_dir")), check.absolute_path, nullable=True
    )
    journal = s.optional_text("journal_dir", None, check.absolute_path, nullable=True)
    critical = s.integer("min_free_mb", _default(d, "min_free_mb"), 0)
    low = s.integer("low_free_mb", max(critical, _default(d, "low_free_mb")), 0)
    if low < critical:
        key = "low_free_mb" if "low_free_mb" in s.entries else "min_free_mb"
        raise s.error(key, f"low_free_mb ({low}) is the warning mark: it must be at least "
                      f"min_free_mb ({critical}), the critical one")  # fmt: skip
    backend = s.text("backend", _default(d, "backend"), check.one_of(STORAGE_BACKENDS))
    s3 = _read_s3(s.section("s3", KEYS["storage.s3"])) if "s3" in s.entries else None
    if backend == "s3" and s3 is None:
        raise s.error("backend", "backend s3 needs an s3: section (bucket, endpoint, keys)")
    encryption = None
    if "encryption" in s.entries:
        encryption = _read_encryption(s.section("encryption", KEYS["storage.encryption"]))
    compact = None
    if "compact" in s.entries:
        compact = _read_compact(s.section("compact", KEYS["storage.compact"]))
        if backend == "s3":
            raise s.error("compact", "compact copies are made in the local archive only: "
                          "not with backend s3 (yet)")  # fmt: skip
        if encryption is not None:  # ffmpeg reads the filed file, which is then ciphertext
            raise s.error("compact", "compact copies are not made of encrypted recordings "
                          "(yet): use storage.compact or storage.encryption, not both")  # fmt: skip
    return StorageConfig(
        spool_dir=None if spool is None else Path(spool),
        archive_dir=Path(s.text("archive_dir", REQUIRED, check.absolute_path)),
        format=s.text("format", _default(d, "format"), check.one_of(RECORDING_FORMATS)),
        min_free_mb=critical,
        low_free_mb=low,
        on_critical=s.text("on_critical", _default(d, "on_critical"), check.one_of(ON_CRITICAL)),
        spool_settle_s=s.seconds("spool_settle_s", _default(d, "spool_settle_s")),
        spool_sweep_s=s.seconds("spool_sweep_s", _default(d, "spool_sweep_s")),
        journal_dir=None if journal is None else Path(journal),
        journal_max_mb=s.integer("journal_max_mb", _default(d, "journal_max_mb"), 1),
        backend=backend,
        s3=s3,
        encryption=encryption,
        compact=compact,
    )


def _read_encryption(s: Section) -> EncryptionConfig | None:
    if not s.boolean("enabled", True):
        return None
    given = [k for k in ("master_key_file", "master_key_env") if k in s.entries]
    if len(given) != 1:
        raise s.error(given[-1] if given else None,
                      "give exactly one of master_key_file (a file holding the master key) "
                      "or master_key_env (the environment variable holding it)")  # fmt: skip
    current = _key_source(s, s.text("key_id", REQUIRED, check.key_id), given[0])
    previous = []
    ps = s.section("previous_keys", None)
    for key_id in ps.entries:
        try:
            check.key_id(key_id)
        except Invalid as exc:
            raise ps.error(key_id, str(exc)) from None
        if key_id == current.key_id:
            raise ps.error(key_id, "is the current key_id; a previous key needs another id")
        where = ps.text(key_id, REQUIRED, check.key_location)
        previous.append(MasterKeySource(key_id, None, where.removeprefix("env:"))
                        if where.startswith("env:") else MasterKeySource(key_id, Path(where)))
    return EncryptionConfig(current, tuple(previous))


def _key_source(s: Section, key_id: str, key: str) -> MasterKeySource:
    if key == "master_key_file":
        return MasterKeySource(key_id, Path(s.text(key, REQUIRED, check.absolute_path)))
    return MasterKeySource(key_id, None, s.text(key, REQUIRED, check.env_name))


def _read_compact(s: Section) -> CompactConfig:
    fmt = s.text("format", CompactConfig.format, check.one_of(tuple(COMPACT_FORMATS)))
    _, _, low, high = COMPACT_FORMATS[fmt]
    default = CompactConfig.bitrate_kbps if fmt == "opus" else 32
    bitrate = s.text("bitrate", f"{default}k", check.kbit_rate(low, high))
    return CompactConfig(format=fmt, bitrate_kbps=int(bitrate[:-1]),
                         keep_original=s.boolean("keep_original", CompactConfig.keep_original))


def _read_s3(s: Section) -> S3Config:
    d = S3Config
    access = s.optional_text("access_key", None, check.non_empty, env_var=ENV_S3_ACCESS_KEY)
    secret = s.optional_text("secret_key", None, None, env_var=ENV_S3_SECRET_KEY, secret=True)
    if bool(access) != bool(secret):  # pointed at the one given, missing its partner
        given, missing = ("access_key", "secret_key") if access else ("secret_key", "access_key")
        env = ENV_S3_SECRET_KEY if access else ENV_S3_ACCESS_KEY
        raise s.error(given, f"{given} needs {missing}: set it or {env}")
    return S3Config(
        bucket=s.text("bucket", REQUIRED, check.bucket),
        endpoint=s.optional_text("endpoint", None, check.endpoint_url, nullable=True),
        region=s.text("region", _default(d, "region"), check.non_empty),
        access_key=Secret(access or ""),
        secret_key=Secret(secret or ""),
        retry_max_s=s.seconds("retry_max_s", _default(d, "retry_max_s")),
        multipart_threshold_mb=s.integer("multipart_threshold_mb",
                                         _default(d, "multipart_threshold_mb"), 1),
        # S3 refuses parts under 5 MB (but the last) and over 5 GB.
        part_size_mb=s.integer("part_size_mb", _default(d, "part_size_mb"), 5, 5120),
    )


def _read_departments(s: Section, extensions: re.Pattern[str]) -> dict[str, tuple[str, ...]]:
    departments: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}  # extension -> the department that listed it first
    for name, (line, node) in s.entries.items():
        if not name.strip():
            raise s.error(name, "department name must not be empty", line)
        if not isinstance(node, yaml.SequenceNode):
            raise s.error(name, f"expected a list of extensions, got a {kind(node)}", line)
        members: list[str] = []
        for i, item in enumerate(node.value):
            path, item_line = f"{s.key_path(name)}[{i}]", line_of(item)
            if not isinstance(item, yaml.ScalarNode):
                message = f"expected an extension (a string), got a {kind(item)}"
                raise ConfigError(s.file, item_line, path, message)
            if kind(item) != "string":
                # Quoting matters: YAML reads 0201 as the octal integer 129.
                message = f"expected an extension (a string), got {kind(item)} {item.value}"
                raise ConfigError(s.file, item_line, path, message + "; quote it")
            ext = str(item.value)
            if not extensions.fullmatch(ext):
                message = f"'{ext}' does not match calls.extensions ({extensions.pattern})"
                raise ConfigError(s.file, item_line, path, message)
            if ext in owner:
                first = owner[ext]
                message = (
                    f"extension {ext} is listed twice in {name}"
                    if first == name
                    else f"extension {ext} is in both {first} and {name}"
                )
                raise ConfigError(s.file, item_line, path, message)
            owner[ext] = name
            members.append(ext)
        departments[name] = tuple(members)
    return departments


def _read_calls(s: Section) -> CallsConfig:
    d, ds = CallsConfig, s.section("dial_strings", KEYS["calls.dial_strings"])
    dial_strings = DialStrings(
        inbound=ds.text("inbound", _default(DialStrings, "inbound"), check.dial_string("target")),
        outbound=ds.text(
            "outbound", _default(DialStrings, "outbound"), check.dial_string("number")
        ),
        internal=ds.text(
            "internal", _default(DialStrings, "internal"), check.dial_string("target")
        ),
    )
    extensions = re.compile(s.text("extensions", _default(d, "extensions").pattern, check.regex))
    cs = s.section("controls", KEYS["calls.controls"])
    controls = {
        key: value
        for key in KEYS["calls.controls"]
        if (value := cs.optional_text(key, None, check.dtmf_code, nullable=True)) is not None
    }
    for one, other in (("pause", "resume"), ("stop", "start")):
        if (one in controls) != (other in controls):
            key = one if one in controls else other
            raise cs.error(key, f"{one} and {other} go together: set both or neither", None)
    for key, code in controls.items():
        clash = next((k for k, c in controls.items() if k != key and
                      (c.endswith(code) or code.endswith(c))), None)
        if clash is not None:
            raise cs.error(key, f"{code!r} and {clash}'s {controls[clash]!r} cannot be told "
                           "apart as digits arrive: choose codes that do not end one another",
                           None)
    return CallsConfig(
        dial_timeout_s=s.integer("dial_timeout_s", _default(d, "dial_timeout_s"), 1, 600),
        dial_method=s.text("dial_method", _default(d, "dial_method"),
                           check.one_of(("create", "originate"))),
        dial_strings=dial_strings,
        consent_prompt=s.text("consent_prompt", _default(d, "consent_prompt"), check.media_uri),
        ringback=s.text("ringback", _default(d, "ringback"), check.media_uri),
        default_region=s.text("default_region", _default(d, "default_region"), check.region),
        outside_line_prefix=s.text(
            "outside_line_prefix", _default(d, "outside_line_prefix"), check.digits_only
        ),
        extensions=extensions,
        departments=MappingProxyType(_read_departments(s.section("departments", None), extensions)),
        ring_groups=MappingProxyType(_read_ring_groups(s.section("ring_groups", None), extensions)),
        policy_file=_optional_path(s, "policy_file"),
        controls=MappingProxyType(controls),
    )


def _read_ring_groups(s: Section, extensions: re.Pattern[str]) -> dict[str, tuple[str, ...]]:
    """Group number -> the extensions it rings at once; a member may be in several groups."""
    groups: dict[str, tuple[str, ...]] = {}
    for number, (line, node) in s.entries.items():
        if not extensions.fullmatch(number):
            message = f"group number '{number}' does not match calls.extensions"
            raise s.error(number, f"{message} ({extensions.pattern}); quote it", line)
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise s.error(number, f"expected a non-empty list of extensions, got a {kind(node)}",
                          line)
        members: list[str] = []
        for i, item in enumerate(node.value):
            path, item_line = f"{s.key_path(number)}[{i}]", line_of(item)
            if not isinstance(item, yaml.ScalarNode) or kind(item) != "string":
                message = f"expected an extension (a quoted string), got {kind(item)}"
                raise ConfigError(s.file, item_line, path, message)
            ext = str(item.value)
            if not extensions.fullmatch(ext) or ext == number or ext in members:
                message = f"'{ext}' is not a distinct extension matching {extensions.pattern}"
                raise ConfigError(s.file, item_line, path, message)
            members.append(ext)
        groups[number] = tuple(members)
    return groups


def _optional_path(s: Section, key: str) -> Path | None:
    value = s.optional_text(key, None, check.absolute_path, nullable=True)
    return None if value is None else Path(value)


def _read_logging(s: Section) -> LoggingConfig:
    d = LoggingConfig
    return LoggingConfig(
        level=s.text("level", _default(d, "level"), check.one_of(LOG_LEVELS, fold_case=True)),
        format=s.text("format", _default(d, "format"), check.one_of(LOG_FORMATS)),
    )


def _read_http(s: Section) -> HttpConfig:
    d = HttpConfig
    host = s.text("host", _default(d, "host"), check.non_empty)
    cert = s.optional_text("tls_cert", None, check.absolute_path, nullable=True)
    key = s.optional_text("tls_key", None, check.absolute_path, nullable=True)
    if (cert is None) != (key is None):
        missing = "tls_key" if key is None else "tls_cert"
        raise s.error(missing, "tls_cert and tls_key go together: give both or neither")
    if cert is None and not check.is_loopback(host):
        # Passwords, session cookies and recordings must not cross a network in clear.
        raise s.error(
            "host",
            f"'{host}' is not a loopback address: serve it with TLS "
            "(http.tls_cert, http.tls_key) or keep it on 127.0.0.1 behind a proxy",
        )
    idle = s.integer("session_idle_s", _default(d, "session_idle_s"), 60)
    maximum = s.integer("session_max_s", _default(d, "session_max_s"), 60)
    if maximum < idle:
        key_ = "session_max_s" if "session_max_s" in s.entries else "session_idle_s"
        raise s.error(key_, f"session_max_s ({maximum}) must be at least session_idle_s ({idle})")
    return HttpConfig(
        enabled=s.boolean("enabled", _default(d, "enabled")),
        host=host,
        port=s.integer("port", _default(d, "port"), 1, 65535),
        tls_cert=None if cert is None else Path(cert),
        tls_key=None if key is None else Path(key),
        secure_cookies=s.boolean("secure_cookies", _default(d, "secure_cookies")),
        session_idle_s=idle,
        session_max_s=maximum,
    )


def _local_host(s: Section, default: str, why: str) -> tuple[str, bool]:
    """`host` and `allow_non_loopback` of a listener without authentication: loopback unless
    allowed. `why` says what a stranger reaching it could do, and the safe way."""
    host = s.text("host", default, check.non_empty)
    allow = s.boolean("allow_non_loopback", False)
    if not allow and not check.is_loopback(host):
        raise s.error("host", f"'{host}' is not a loopback address: {why}, or set "
                      f"{s.key_path('allow_non_loopback')} on a trusted network")  # fmt: skip
    return host, allow


def _read_hooks(s: Section) -> HooksConfig:
    d = HooksConfig
    host, allow = _local_host(s, _default(d, "host"), "FastAGI has no authentication, so "
                              "anyone who reaches it could stop recordings; keep Asterisk on "
                              "this host")  # fmt: skip
    return HooksConfig(
        enabled=s.boolean("enabled", _default(d, "enabled")),
        host=host,
        port=s.integer("port", _default(d, "port"), 1, 65535),
        allow_non_loopback=allow,
        reply_timeout_s=s.seconds("reply_timeout_s", _default(d, "reply_timeout_s")),
    )


def _read_metrics(s: Section) -> MetricsConfig:
    d = MetricsConfig
    host, allow = _local_host(s, _default(d, "host"), "/metrics has no authentication and "
                              "tells who is on the phone how often; keep it on 127.0.0.1 "
                              "(scrape through a proxy or an SSH tunnel)")  # fmt: skip
    return MetricsConfig(
        enabled=s.boolean("enabled", _default(d, "enabled")),
        host=host,
        port=s.integer("port", _default(d, "port"), 1, 65535),
        allow_non_loopback=allow,
        health_log_s=s.seconds("health_log_s", _default(d, "health_log_s")),
    )


def _read_ami(s: Section) -> AmiConfig:
    d = AmiConfig
    username = s.optional_text("username", None, check.username, nullable=True)
    secret = s.optional_text("secret", None, None, env_var=ENV_AMI_SECRET, secret=True)
    if username is not None and not secret:
        raise s.error("username", f"an AMI user needs its secret: set {ENV_AMI_SECRET}")
    return AmiConfig(
        host=s.text("host", _default(d, "host"), check.non_empty),
        port=s.integer("port", _default(d, "port"), 1, 65535),
        username=username,
        secret=Secret(secret or ""),
    )


def _read_keeping(s: Section) -> KeepingConfig:
    d = KeepingConfig
    return KeepingConfig(
        purge_at=s.optional_text("purge_at", _default(d, "purge_at"), check.hh_mm, nullable=True),
        purge_batch=s.integer("purge_batch", _default(d, "purge_batch"), 1, 100_000),
        verify_every_s=s.integer("verify_every_s", _default(d, "verify_every_s"), 0),
        verify_sample_percent=s.integer(
            "verify_sample_percent", _default(d, "verify_sample_percent"), 1, 100
        ),
    )


def load_config(path: Path, env: Mapping[str, str] = os.environ) -> Config:
    """Read, validate and freeze the configuration; raises ConfigError on the first problem."""
    path = Path(path)
    root = Section(str(path), env, "", 1, parse_yaml(path, ConfigError), KEYS[""])

    def read(key: str, reader: Callable[[Section], _T]) -> _T:
        return reader(root.section(key, KEYS[key]))

    return Config(
        asterisk=read("asterisk", _read_asterisk),
        ari=read("ari", _read_ari),
        database=read("database", _read_database),
        storage=read("storage", _read_storage),
        calls=read("calls", _read_calls),
        logging=read("logging", _read_logging),
        http=read("http", _read_http),
        hooks=read("hooks", _read_hooks),
        metrics=read("metrics", _read_metrics),
        ami=read("ami", _read_ami),
        keeping=read("keeping", _read_keeping),
        path=path,
    )
