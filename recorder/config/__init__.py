"""Verbatim's configuration: one YAML file, validated once at start into frozen dataclasses.

Precedence: defaults (on the dataclasses in `model`), then the YAML file, then environment
variables for secrets and per-host values: VERBATIM_ARI_PASSWORD, VERBATIM_DATABASE_DSN,
VERBATIM_ARI_URL, VERBATIM_ARI_USERNAME, VERBATIM_AMI_SECRET (an empty variable counts as
unset). Every problem raises ConfigError "<file>:<line>: <key.path>: <what is wrong>" so an
operator can go straight to the line. Unknown keys are errors: a misspelt key silently falling
back to its default is how a firm ends up recording to the wrong place.
"""

from recorder.config.loader import load_config
from recorder.config.model import (
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
    department_of,
)

__all__ = [
    "AmiConfig",
    "AriConfig",
    "AsteriskConfig",
    "CallsConfig",
    "CompactConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DialStrings",
    "EncryptionConfig",
    "HooksConfig",
    "HttpConfig",
    "KeepingConfig",
    "LoggingConfig",
    "MasterKeySource",
    "MetricsConfig",
    "S3Config",
    "Secret",
    "StorageConfig",
    "department_of",
    "load_config",
]
