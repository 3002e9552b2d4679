"""load_config on good files: defaults, values, environment overrides, secrets, the example."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from recorder.config import (
    AriConfig,
    CompactConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    Secret,
    StorageConfig,
    department_of,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "verbatim.example.yaml"
PASSWORD = "ari-pa55word-xyz"
DSN = "postgresql://verbatim:db-pa55word-xyz@db.example:5432/verbatim"
ENV = {"VERBATIM_ARI_PASSWORD": PASSWORD, "VERBATIM_DATABASE_DSN": DSN}
ENV_VARS = (
    "VERBATIM_ARI_PASSWORD",
    "VERBATIM_DATABASE_DSN",
    "VERBATIM_ARI_URL",
    "VERBATIM_ARI_USERNAME",
)
MINIMAL = f"""\
ari:
  username: verbatim
  password: "{PASSWORD}"
database:
  dsn: "{DSN}"
storage:
  archive_dir: /srv/archive
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "verbatim.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {} if env is None else env)


def test_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    c = _load(tmp_path, MINIMAL)
    assert c.path == tmp_path / "verbatim.yaml"
    assert c.asterisk.label == "default"
    assert c.ari.url == "http://127.0.0.1:8088"
    assert c.ari.base_url == "http://127.0.0.1:8088/ari"
    assert c.ari.username == "verbatim"
    assert c.ari.password.reveal() == PASSWORD
    assert c.ari.app == "verbatim"
    assert (c.ari.reconnect_initial_s, c.ari.reconnect_max_s) == (0.5, 30.0)
    assert c.ari.request_timeout_s == 10.0
    assert c.database.dsn.reveal() == DSN
    assert (c.database.pool_min, c.database.pool_max) == (1, 5)
    assert c.storage.spool_dir == Path("/var/spool/asterisk/recording")
    assert c.storage.archive_dir == Path("/srv/archive")
    assert c.storage.format == "wav"
    assert c.storage.min_free_mb == 500
    assert (c.storage.spool_settle_s, c.storage.spool_sweep_s) == (5.0, 15.0)
    assert c.calls.dial_timeout_s == 30
    assert c.calls.dial_strings.inbound == "PJSIP/{target}"
    assert c.calls.dial_strings.outbound == "PJSIP/{number}@trunk"
    assert c.calls.dial_strings.internal == "PJSIP/{target}"
    assert c.calls.consent_prompt == "sound:verbatim/consent"
    assert c.calls.ringback == "tone:ring"
    assert c.calls.default_region == "US"
    assert c.calls.outside_line_prefix == "9"
    assert c.calls.extensions.pattern == "^[0-9]{2,6}$"
    assert dict(c.calls.departments) == {}
    assert (c.logging.level, c.logging.format) == ("info", "json")


def test_every_value_is_read(tmp_path: Path) -> None:
    c = _load(
        tmp_path,
        """\
asterisk:
  label: "Oakland office"
ari:
  url: "https://pbx.example:8089/asterisk/"
  username: "rec"
  password: "p"
  app: "verbatim-2"
  reconnect_initial_s: 1
  reconnect_max_s: 1
  request_timeout_s: 2.5
database:
  dsn: "postgres://localhost/v"
  pool_min: 0
  pool_max: 1
storage:
  spool_dir: null
  archive_dir: "/mnt/archive"
  format: "sln16"
  min_free_mb: 0
  spool_settle_s: 2
  spool_sweep_s: 0.5
calls:
  dial_timeout_s: 600
  dial_strings:
    inbound: "Local/{target}@from-verbatim"
    outbound: "PJSIP/{number}@trunk-{{a}}"
    internal: "PJSIP/{target}"
  consent_prompt: "recording:consent-en"
  ringback: "tone:ring;tonezone=uk"
  default_region: "GB"
  outside_line_prefix: ""
  extensions: "[1-3][0-9]{2}"
  departments:
    Intake: ["201", "202"]
    "Family Law":
      - "301"
    Empty: []
logging:
  level: "WARNING"
  format: "console"
""",
    )
    assert c.asterisk.label == "Oakland office"
    assert c.ari.url == "https://pbx.example:8089/asterisk"
    assert c.ari.base_url == "https://pbx.example:8089/asterisk/ari"
    assert c.ari.username == "rec"
    assert c.ari.app == "verbatim-2"
    assert (c.ari.reconnect_initial_s, c.ari.reconnect_max_s) == (1.0, 1.0)
    assert isinstance(c.ari.reconnect_initial_s, float)
    assert c.ari.request_timeout_s == 2.5
    assert c.database.dsn.reveal() == "postgres://localhost/v"
    assert (c.database.pool_min, c.database.pool_max) == (0, 1)
    assert c.storage.spool_dir is None
    assert c.storage.archive_dir == Path("/mnt/archive")
    assert (c.storage.format, c.storage.min_free_mb) == ("sln16", 0)
    assert (c.storage.spool_settle_s, c.storage.spool_sweep_s) == (2.0, 0.5)
    assert c.calls.dial_timeout_s == 600
    assert c.calls.dial_strings.inbound == "Local/{target}@from-verbatim"
    assert c.calls.dial_strings.outbound == "PJSIP/{number}@trunk-{{a}}"
    assert c.calls.consent_prompt == "recording:consent-en"
    assert c.calls.ringback == "tone:ring;tonezone=uk"
    assert c.calls.default_region == "GB"
    assert c.calls.outside_line_prefix == ""
    assert c.calls.extensions.fullmatch("250")
    assert dict(c.calls.departments) == {
        "Intake": ("201", "202"),
        "Family Law": ("301",),
        "Empty": (),
    }
    assert c.calls.department_by_extension == {
        "201": "Intake",
        "202": "Intake",
        "301": "Family Law",
    }
    assert (c.logging.level, c.logging.format) == ("warning", "console")


def test_empty_sections_take_defaults(tmp_path: Path) -> None:
    c = _load(tmp_path, MINIMAL + "asterisk:\ncalls:\nlogging:\n")
    assert c.asterisk.label == "default"
    assert c.calls.dial_timeout_s == 30


def test_config_is_frozen(tmp_path: Path) -> None:
    c = _load(tmp_path, MINIMAL + "calls:\n  departments:\n    Intake: ['201']\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.ari.app = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.calls.departments["Sales"] = ("300",)  # type: ignore[index]


# --- environment overrides ----------------------------------------------------------------------

ONLY_REQUIRED_NON_SECRETS = "ari:\n  username: verbatim\nstorage:\n  archive_dir: /srv/archive\n"


def test_secrets_from_environment_only(tmp_path: Path) -> None:
    c = _load(tmp_path, ONLY_REQUIRED_NON_SECRETS, ENV)
    assert c.ari.password.reveal() == PASSWORD
    assert c.database.dsn.reveal() == DSN


def test_environment_overrides_file(tmp_path: Path) -> None:
    env = {
        "VERBATIM_ARI_PASSWORD": "from-env",
        "VERBATIM_DATABASE_DSN": "postgresql://env@h/db",
        "VERBATIM_ARI_URL": "https://env-pbx:8089/",
        "VERBATIM_ARI_USERNAME": "env-user",
    }
    c = _load(tmp_path, MINIMAL, env)
    assert c.ari.password.reveal() == "from-env"
    assert c.database.dsn.reveal() == "postgresql://env@h/db"
    assert c.ari.url == "https://env-pbx:8089"
    assert c.ari.username == "env-user"


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    env = {"VERBATIM_ARI_PASSWORD": "", "VERBATIM_DATABASE_DSN": "", "VERBATIM_ARI_URL": ""}
    c = _load(tmp_path, MINIMAL, env)
    assert c.ari.password.reveal() == PASSWORD
    assert c.ari.url == "http://127.0.0.1:8088"


def test_compact_copies(tmp_path: Path) -> None:
    base = "ari:\n  username: u\nstorage:\n  archive_dir: /a\n"
    assert _load(tmp_path, base, ENV).storage.compact is None
    s = _load(tmp_path, base + "  compact:\n    format: mp3\n", ENV).storage
    assert s.compact == CompactConfig("mp3", 32, keep_original=True)  # MP3's own default
    s = _load(tmp_path, base + "  compact:\n    format: opus\n    bitrate: 16k\n"
              "    keep_original: false\n", ENV).storage  # fmt: skip
    assert s.compact == CompactConfig("opus", 16, keep_original=False)


def test_object_storage(tmp_path: Path) -> None:
    text = ("ari:\n  username: u\nstorage:\n  archive_dir: /a\n  backend: s3\n  s3:\n"
            "    bucket: firm.recordings\n    endpoint: http://seaweed.office:8333/\n"
            "    region: eu-west-1\n    access_key: from-file\n    retry_max_s: 30\n"
            "    multipart_threshold_mb: 100\n    part_size_mb: 16\n")
    env = {**ENV, "VERBATIM_S3_SECRET_KEY": "s3-secret", "VERBATIM_S3_ACCESS_KEY": "from-env"}
    s = _load(tmp_path, text, env).storage
    assert s.backend == "s3" and s.s3 is not None
    assert (s.s3.bucket, s.s3.endpoint, s.s3.region, s.s3.retry_max_s) == (
        "firm.recordings", "http://seaweed.office:8333", "eu-west-1", 30.0)
    assert (s.s3.multipart_threshold_mb, s.s3.part_size_mb) == (100, 16)
    assert (s.s3.access_key.reveal(), s.s3.secret_key.reveal()) == ("from-env", "s3-secret")
    assert "s3-secret" not in repr(s)
    # No keys at all: the AWS default credential chain (instance role, ~/.aws).
    aws = _load(tmp_path, text.replace("    access_key: from-file\n", ""), ENV).storage.s3
    assert aws is not None and aws.access_key.reveal() == aws.secret_key.reveal() == ""
    assert _load(tmp_path, MINIMAL, ENV).storage.backend == "local"


def test_null_secret_in_file_is_filled_from_environment(tmp_path: Path) -> None:
    text = "ari:\n  username: u\n  password:\ndatabase:\n  dsn:\nstorage:\n  archive_dir: /a\n"
    c = _load(tmp_path, text, ENV)
    assert c.ari.password.reveal() == PASSWORD


def test_username_from_environment(tmp_path: Path) -> None:
    c = _load(tmp_path, "storage:\n  archive_dir: /a\n", {**ENV, "VERBATIM_ARI_USERNAME": "u"})
    assert c.ari.username == "u"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "storage:\n  archive_dir: /a\nari:\n  username: u\n",
            {"VERBATIM_DATABASE_DSN": DSN},
            ":3: ari.password: required key is missing "
            "(or set environment variable VERBATIM_ARI_PASSWORD)",
        ),
        (
            "storage:\n  archive_dir: /a\nari:\n  username: u\n  password:\n",
            {"VERBATIM_DATABASE_DSN": DSN},
            ":5: ari.password: required key is missing "
            "(or set environment variable VERBATIM_ARI_PASSWORD)",
        ),
        (
            "storage:\n  archive_dir: /a\nari:\n  username: u\n",
            {"VERBATIM_ARI_PASSWORD": PASSWORD},
            ":1: database.dsn: required key is missing "
            "(or set environment variable VERBATIM_DATABASE_DSN)",
        ),
        (
            "storage:\n  archive_dir: /a\n",
            ENV,
            ":1: ari.username: required key is missing "
            "(or set environment variable VERBATIM_ARI_USERNAME)",
        ),
        (
            MINIMAL,
            {"VERBATIM_ARI_URL": "ftp://pbx"},
            ": ari.url: must be an http:// or https:// URL, got 'ftp://pbx' "
            "(from environment variable VERBATIM_ARI_URL)",
        ),
        (
            MINIMAL,
            {"VERBATIM_ARI_USERNAME": "a:b"},
            ": ari.username: must be non-empty, without ':' or surrounding spaces (HTTP basic "
            "auth) (from environment variable VERBATIM_ARI_USERNAME)",
        ),
        (
            MINIMAL,
            {"VERBATIM_DATABASE_DSN": "mysql://root:env-hunter2@db/x"},
            ": database.dsn: must be a postgresql:// (or postgres://) URL "
            "(from environment variable VERBATIM_DATABASE_DSN)",
        ),
        # the file is still checked when the environment overrides it
        (
            MINIMAL.replace(f'"{PASSWORD}"', "12345"),
            ENV,
            ":3: ari.password: expected a string, got integer; quote it",
        ),
    ],
)
def test_environment_errors(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text, env)
    assert str(caught.value) == f"{tmp_path / 'verbatim.yaml'}{expected}"
    assert "hunter2" not in str(caught.value)


def test_default_env_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBATIM_ARI_PASSWORD", "from-os")
    monkeypatch.setenv("VERBATIM_DATABASE_DSN", DSN)
    path = tmp_path / "verbatim.yaml"
    path.write_text(ONLY_REQUIRED_NON_SECRETS, encoding="utf-8")
    assert load_config(path).ari.password.reveal() == "from-os"


# --- secrets never shown ------------------------------------------------------------------------


def _reprs(obj: Any) -> list[str]:
    """repr and str of obj and of every object nested in it (dataclass fields, containers)."""
    out = [repr(obj), str(obj), f"{obj}"]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            out += _reprs(getattr(obj, f.name))
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            out += _reprs(key) + _reprs(value)
    elif isinstance(obj, tuple | list):
        for value in obj:
            out += _reprs(value)
    return out


def test_secrets_never_in_repr_or_str(tmp_path: Path) -> None:
    c = _load(tmp_path, MINIMAL)
    texts = _reprs(c)
    assert len(texts) > 50  # the walk reached the nested sections
    for text in texts:
        assert PASSWORD not in text
        assert "db-pa55word-xyz" not in text
    assert "password=Secret('***')" in repr(c)
    assert "dsn=Secret('***')" in repr(c)


def test_secret() -> None:
    s = Secret("hunter2")
    assert repr(s) == str(s) == f"{s}" == "Secret('***')"
    assert "hunter2" not in repr([s]) + repr({"k": s})
    assert s.reveal() == "hunter2"
    assert s == Secret("hunter2")
    assert s != Secret("other")
    assert s != "hunter2"


def test_dataclasses_can_be_built_without_yaml() -> None:
    c = Config(
        ari=AriConfig(username="u", password=Secret("p")),
        database=DatabaseConfig(dsn=Secret("postgresql://h/db")),
        storage=StorageConfig(archive_dir=Path("/a")),
    )
    assert c.calls.extensions.fullmatch("201")
    assert department_of(c, "201") is None


# --- departments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extension", "expected"),
    [("201", "Intake"), ("202", "Intake"), ("301", "Family Law"), ("203", None), ("", None)],
)
def test_department_of(tmp_path: Path, extension: str, expected: str | None) -> None:
    text = MINIMAL + (
        "calls:\n  departments:\n    Intake: ['201', '202']\n    Family Law: ['301']\n"
    )
    assert department_of(_load(tmp_path, text), extension) == expected


# --- the example file -------------------------------------------------------------------------


def test_example_file_loads() -> None:
    c = load_config(EXAMPLE, ENV)
    assert c.asterisk.label == "sf-office"
    assert c.ari.password.reveal() == PASSWORD
    assert c.storage.archive_dir == Path("/var/lib/verbatim/archive")
    assert department_of(c, "201") == "Intake"


def test_example_file_needs_the_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, {})
    ari_line = EXAMPLE.read_text(encoding="utf-8").splitlines().index("ari:") + 1
    assert (caught.value.line, caught.value.key) == (ari_line, "ari.password")


def test_example_file_documents_every_key_and_variable() -> None:
    from recorder.config.loader import KEYS

    text = EXAMPLE.read_text(encoding="utf-8")
    for section, keys in KEYS.items():
        for key in keys:
            # present, or commented out (the secrets), at some indentation
            assert re.search(rf"^\s*#?\s*{key}:", text, re.MULTILINE), f"{section}.{key}"
    for var in ENV_VARS:
        assert var in text
