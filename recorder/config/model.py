"""The validated configuration: frozen dataclasses, the Secret wrapper and ConfigError.

Defaults live here, on the dataclasses, and the loader takes them from there, so building a
Config in a test and loading one from YAML cannot disagree about them.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

RECORDING_FORMATS: Final = ("wav", "gsm", "ulaw", "alaw", "sln16")  # what Asterisk can record
# What happens below storage.min_free_mb: recordings go on (Asterisk writes until the disk is
# full), or no new call's recording is started (docs: README "When a part fails").
ON_CRITICAL: Final = ("keep_recording", "refuse_new")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("json", "console")
MEDIA_SCHEMES: Final = ("sound:", "recording:", "tone:")
ENV_ARI_PASSWORD: Final = "VERBATIM_ARI_PASSWORD"  # noqa: S105 - the variable's name, not a secret
ENV_ARI_URL: Final = "VERBATIM_ARI_URL"
ENV_ARI_USERNAME: Final = "VERBATIM_ARI_USERNAME"
ENV_DATABASE_DSN: Final = "VERBATIM_DATABASE_DSN"
ENV_AMI_SECRET: Final = "VERBATIM_AMI_SECRET"  # noqa: S105 - the variable's name, not a secret
ENV_S3_ACCESS_KEY: Final = "VERBATIM_S3_ACCESS_KEY"
ENV_S3_SECRET_KEY: Final = "VERBATIM_S3_SECRET_KEY"  # noqa: S105 - the variable's name


class ConfigError(Exception):
    """A configuration problem, located: "<file>:<line>: <key.path>: <message>".

    `line` is None when the value came from the environment or the file could not be read (the
    location is then just "<file>"), and `key` is None for problems that belong to no key
    (unreadable file, YAML syntax).
    """

    def __init__(self, file: str | Path, line: int | None, key: str | None, message: str) -> None:
        self.file = str(file)
        self.line = line
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


class Secret:
    """A string that never shows itself in repr/str, so not in logs or tracebacks either."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class AsteriskConfig:
    label: str = "default"  # human name of the Asterisk server/office, for logs and the UI


@dataclass(frozen=True)
class AriConfig:
    username: str
    password: Secret
    url: str = "http://127.0.0.1:8088"  # no trailing slash; the REST API is at `base_url`
    app: str = "verbatim"
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    request_timeout_s: float = 10.0

    @property
    def base_url(self) -> str:
        return self.url + "/ari"


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: Secret
    pool_min: int = 1
    pool_max: int = 5


STORAGE_BACKENDS: Final = ("local", "s3")
# storage.compact's formats -> the ffmpeg encoder, the file's suffix, its bitrates (kbit/s).
COMPACT_FORMATS: Final = {"opus": ("libopus", "opus", 6, 510), "mp3": ("libmp3lame", "mp3", 8, 320)}


@dataclass(frozen=True)
class S3Config:
    """An S3-compatible bucket (AWS, SeaweedFS, MinIO, Ceph RGW) for storage.backend: s3."""

    bucket: str
    endpoint: str | None = None  # None: AWS's own endpoint for the region
    region: str = "us-east-1"
    access_key: Secret = field(default_factory=lambda: Secret(""))
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    # Uploads are retried after a failure, waiting twice as long each time up to this.
    retry_max_s: float = 60.0
    # A recording larger than this goes up in parts of part_size_mb (S3's multipart upload:
    # no whole file in memory, a failed part is sent again alone); smaller ones in one PUT.
    multipart_threshold_mb: int = 64
    part_size_mb: int = 8  # S3's minimum for all but the last part is 5


@dataclass(frozen=True)
class CompactConfig:
    """A compact copy of each filed recording (Opus in Ogg, or MP3), made by ffmpeg after the
    original's SHA-256 was taken; both hashes are kept (recorder/storage/compact.py)."""

    format: str = "opus"  # COMPACT_FORMATS
    bitrate_kbps: int = 24  # 24 kbit/s Opus is clear speech; MP3 needs about 32
    # False: the compact copy becomes the recording (played, moved, purged, verified) and the
    # original is deleted once the copy's row is committed; its hash stays (original_sha256).
    keep_original: bool = True


@dataclass(frozen=True)
class MasterKeySource:
    """Where a master key is read from: a file, or an environment variable (never the config
    itself, never the database). Its content: 32 random bytes in base64."""

    key_id: str
    file: Path | None = None
    env: str | None = None

    def describe(self) -> str:
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"


@dataclass(frozen=True)
class EncryptionConfig:
    """storage.encryption: each recording encrypted at rest under its own data key, wrapped by
    the master key `current` (recorder/storage/crypt.py). `previous`: older master keys still
    able to unwrap data keys until `verbatim keys rotate` has re-wrapped them all."""

    current: MasterKeySource
    previous: tuple[MasterKeySource, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    archive_dir: Path
    # None: Asterisk runs on another host, so recordings are fetched over ARI, not from disk.
    spool_dir: Path | None = Path("/var/spool/asterisk/recording")
    format: str = "wav"
    # Free-space watermarks, for each of the spool and the archive: below low_free_mb a warning
    # (disk.low); below min_free_mb (the critical mark; `verbatim health` fails) an error
    # (disk.critical) every minute, and on_critical says what happens to new recordings.
    min_free_mb: int = 500
    low_free_mb: int = 2000
    on_critical: str = "keep_recording"  # or "refuse_new" (ON_CRITICAL)
    # A spool file is filed only once unmodified this long (Asterisk may still be writing it;
    # MixMonitor closes its file just after the channel is destroyed).
    spool_settle_s: float = 5.0
    # How often the spool is swept for files no call of the daemon's holds: the dialplan
    # fallback's (hook mode also imports each one soon after its channel is destroyed).
    spool_sweep_s: float = 15.0
    # The write-ahead journal of rows PostgreSQL has not taken (recorder.service.journal):
    # local disk, owner-only. None: beside the archive, <archive_dir>.journal (not in it: the
    # archive holds recordings only).
    journal_dir: Path | None = None
    journal_max_mb: int = 256
    # "local": recordings stay in archive_dir. "s3": filed there first, then uploaded to s3's
    # bucket and removed locally once the store confirms their SHA-256.
    backend: str = "local"
    s3: S3Config | None = None
    encryption: EncryptionConfig | None = None  # None: recordings are filed as recorded
    compact: CompactConfig | None = None  # None: no compact copies

    @property
    def journal(self) -> Path:
        return self.journal_dir or self.archive_dir.with_name(self.archive_dir.name + ".journal")


@dataclass(frozen=True)
class DialStrings:
    inbound: str = "PJSIP/{target}"
    outbound: str = "PJSIP/{number}@trunk"
    internal: str = "PJSIP/{target}"


@dataclass(frozen=True)
class CallsConfig:
    dial_timeout_s: int = 30
    dial_method: str = "create"  # create (/channels/create + /dial) | originate (POST /channels)
    dial_strings: DialStrings = field(default_factory=DialStrings)
    consent_prompt: str = "sound:verbatim/consent"
    ringback: str = "tone:ring"
    default_region: str = "US"
    outside_line_prefix: str = "9"
    extensions: re.Pattern[str] = re.compile(r"^[0-9]{2,6}$")
    # department -> its extensions; read-only, and the loader rejects an extension in two
    departments: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # ring group number -> the extensions it rings at once (the first to answer takes the call)
    ring_groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # In-call DTMF controls: {"pause": "*1", "resume": "*2", "stop": "*3", "start": "*4"}
    controls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Recording/consent policy (recorder.policy); None: the built-in defaults.
    policy_file: Path | None = None

    @property
    def department_by_extension(self) -> dict[str, str]:
        return {ext: name for name, exts in self.departments.items() for ext in exts}


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class HttpConfig:
    """The search API and web page (`verbatim serve`, or `verbatim run` when enabled)."""

    enabled: bool = False  # whether `verbatim run` serves them too
    host: str = "127.0.0.1"  # loopback unless TLS is configured (the loader enforces it)
    port: int = 8480
    tls_cert: Path | None = None  # PEM certificate chain; with tls_key, serve HTTPS
    tls_key: Path | None = None
    # Mark cookies Secure even without TLS here: for a TLS-terminating proxy on this host.
    secure_cookies: bool = False
    session_idle_s: int = 1800  # a session unused this long is over
    session_max_s: int = 43200  # and none lives longer than this, used or not

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None


@dataclass(frozen=True)
class HooksConfig:
    """The FastAGI server for dialplans that keep their calls (hook mode, dialplan/)."""

    enabled: bool = False
    # FastAGI has no authentication: whoever reaches it can pause or stop recordings. Loopback
    # (Asterisk on this host) unless allow_non_loopback says the network is trusted.
    host: str = "127.0.0.1"
    port: int = 4573
    allow_non_loopback: bool = False
    # How long a hook waits for the recorder (the caller's snoop recording to start) before it
    # answers FAILED and lets the dialplan go on (to its MixMonitor fallback).
    reply_timeout_s: float = 10.0


@dataclass(frozen=True)
class MetricsConfig:
    """Health for ops, served by `verbatim run` whether or not the HTTP API is: Prometheus
    /metrics, /healthz, /readyz. Unauthenticated, so loopback unless allow_non_loopback."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9480
    allow_non_loopback: bool = False
    # A `recording.health` JSON line with the same figures, this often (logged also when the
    # listener is off).
    health_log_s: float = 60.0


@dataclass(frozen=True)
class AmiConfig:
    """Asterisk's manager interface, used only by `verbatim doctor` to list the dialplan (ARI
    cannot); no username means doctor says it could not check the dialplan."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str | None = None
    secret: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True)
class KeepingConfig:
    """What the daemon does for retention and tamper evidence (docs/keeping.md)."""

    purge_at: str | None = "03:30"  # daily purge time, HH:MM UTC; None: no daily purge
    purge_batch: int = 1000  # recordings per transaction
    verify_every_s: int = 86400  # periodic `verify` of this server's archive; 0: never
    verify_sample_percent: int = 100  # of the files, re-hashed each time (all are listed)


@dataclass(frozen=True)
class Config:
    ari: AriConfig
    database: DatabaseConfig
    storage: StorageConfig
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    keeping: KeepingConfig = field(default_factory=KeepingConfig)
    path: Path | None = None  # the file it was loaded from


def department_of(config: Config, extension: str) -> str | None:
    """The department an extension belongs to, or None."""
    for name, extensions in config.calls.departments.items():
        if extension in extensions:
            return name
    return None


def default_config_path() -> str:
    """$VERBATIM_CONFIG, else /etc/verbatim/verbatim.yaml."""
    return os.environ.get("VERBATIM_CONFIG", "/etc/verbatim/verbatim.yaml")
