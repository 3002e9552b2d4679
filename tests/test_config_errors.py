"""Every bad configuration names its file, line and key path: one literal case per row.

The secrets and the ARI username come from the environment (ENV) so each case needs only the
lines under test; STORAGE, appended last, keeps the line numbers of the case's own lines as
written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.config import ConfigError, load_config

ENV = {
    "VERBATIM_ARI_USERNAME": "verbatim",
    "VERBATIM_ARI_PASSWORD": "s3cret-pw",
    "VERBATIM_DATABASE_DSN": "postgresql://verbatim:db-s3cret@localhost/verbatim",
}
STORAGE = "storage:\n  archive_dir: /srv/archive\n"

# (yaml, line, key path, message) — the message is matched exactly.
CASES: list[tuple[str, int, str, str]] = [
    # unknown and duplicate keys
    (
        "ari:\n  app: x\nloging:\n  level: info\n" + STORAGE,
        3,
        "loging",
        "unknown key; did you mean 'logging'?",
    ),
    (
        "ari:\n  reconect_max_s: 5\n" + STORAGE,
        2,
        "ari.reconect_max_s",
        "unknown key; did you mean 'reconnect_max_s'?",
    ),
    (
        "database:\n  DSN: x\n" + STORAGE,
        2,
        "database.DSN",
        "unknown key; did you mean 'dsn'?",
    ),
    (
        "logging:\n  colour: blue\n" + STORAGE,
        2,
        "logging.colour",
        "unknown key; known keys: level, format",
    ),
    (
        "calls:\n  dial_strings:\n    outbond: PJSIP/{number}\n" + STORAGE,
        3,
        "calls.dial_strings.outbond",
        "unknown key; did you mean 'outbound'?",
    ),
    (
        "ari:\n  app: a\n  url: http://h\n  app: b\n" + STORAGE,
        4,
        "ari.app",
        "duplicate key (first given on line 2)",
    ),
    (
        "ari:\n  app: a\n" + STORAGE + "ari:\n  app: b\n",
        5,
        "ari",
        "duplicate key (first given on line 1)",
    ),
    # keys that are not strings
    ("ari:\n  1: x\n" + STORAGE, 2, "ari", "keys must be strings, got integer '1'; quote it"),
    ("yes: 1\n" + STORAGE, 1, "(top level)", "keys must be strings, got boolean 'yes'; quote it"),
    ("ari:\n  <<: {app: x}\n" + STORAGE, 2, "ari", "merge keys (<<) are not supported"),
    # sections that are not mappings
    ("ari: verbatim\n" + STORAGE, 1, "ari", "expected a mapping, got a string"),
    ("- ari\n", 1, "(top level)", "expected a mapping, got a list"),
    (
        "calls:\n  dial_strings: PJSIP/x\n" + STORAGE,
        2,
        "calls.dial_strings",
        "expected a mapping, got a string",
    ),
    # strings: YAML's booleans, numbers and dates are not strings
    (
        "asterisk:\n  label: yes\n" + STORAGE,
        2,
        "asterisk.label",
        "expected a string, got boolean 'yes' (YAML reads unquoted yes/no/on/off/true/false "
        "as booleans); quote it",
    ),
    (
        "\n\nasterisk:\n  label: Off\n" + STORAGE,
        4,
        "asterisk.label",
        "expected a string, got boolean 'Off' (YAML reads unquoted yes/no/on/off/true/false "
        "as booleans); quote it",
    ),
    (
        "calls:\n  outside_line_prefix: 9\n" + STORAGE,
        2,
        "calls.outside_line_prefix",
        "expected a string, got integer 9; quote it",
    ),
    (
        "asterisk:\n  label: 2024-01-01\n" + STORAGE,
        2,
        "asterisk.label",
        "expected a string, got date 2024-01-01; quote it",
    ),
    (
        "asterisk:\n  label: 1.5\n" + STORAGE,
        2,
        "asterisk.label",
        "expected a string, got number 1.5; quote it",
    ),
    (
        "asterisk:\n  label: !office sf\n" + STORAGE,
        2,
        "asterisk.label",
        "expected a string, got value tagged !office sf; quote it",
    ),
    ("asterisk:\n  label: [sf]\n" + STORAGE, 2, "asterisk.label", "expected a string, got a list"),
    ("asterisk:\n  label: ''\n" + STORAGE, 2, "asterisk.label", "must not be empty"),
    (
        "asterisk:\n  label:\n" + STORAGE,
        2,
        "asterisk.label",
        "expected a string, got nothing (null)",
    ),
    # integers
    (
        "database:\n  pool_max: 2.5\n" + STORAGE,
        2,
        "database.pool_max",
        "expected an integer, got number '2.5'",
    ),
    (
        "calls:\n  dial_timeout_s:\n" + STORAGE,
        2,
        "calls.dial_timeout_s",
        "expected an integer, got nothing (null)",
    ),
    (
        "ari:\n  request_timeout_s: ~\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "expected a number of seconds, got nothing (null)",
    ),
    (
        "database:\n  pool_min: [1]\n" + STORAGE,
        2,
        "database.pool_min",
        "expected an integer, got a list",
    ),
    (
        "calls:\n  dial_timeout_s: 30s\n" + STORAGE,
        2,
        "calls.dial_timeout_s",
        "expected an integer, got string '30s'",
    ),
    (
        "calls:\n  dial_timeout_s: 1e2\n" + STORAGE,
        2,
        "calls.dial_timeout_s",
        "expected an integer, got string '1e2' (YAML reads it as text: write the digits alone)",
    ),
    (
        "ari:\n  request_timeout_s: 1e1\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "expected a number of seconds, got string '1e1' (YAML reads it as text: write the "
        "digits alone, or an exponent as 1.0e+3)",
    ),
    (
        "ari:\n  request_timeout_s: 1.0e1\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "expected a number of seconds, got string '1.0e1' (YAML reads it as text: write the "
        "digits alone, or an exponent as 1.0e+3)",
    ),
    (
        "storage:\n  archive_dir: /a\n  min_free_mb: 1,024\n",
        3,
        "storage.min_free_mb",
        "expected an integer, got string '1,024' (YAML reads it as text: write the digits alone)",
    ),
    (
        "storage:\n  archive_dir: /a\n  min_free_mb: no\n",
        3,
        "storage.min_free_mb",
        "expected an integer, got boolean 'no' (YAML reads unquoted yes/no/on/off/true/false "
        "as booleans)",
    ),
    (
        "calls:\n  dial_timeout_s: 0\n" + STORAGE,
        2,
        "calls.dial_timeout_s",
        "must be between 1 and 600, got 0",
    ),
    (
        "calls:\n  dial_timeout_s: 601\n" + STORAGE,
        2,
        "calls.dial_timeout_s",
        "must be between 1 and 600, got 601",
    ),
    (
        "storage:\n  archive_dir: /a\n  min_free_mb: -1\n",
        3,
        "storage.min_free_mb",
        "must be at least 0, got -1",
    ),
    (
        "storage:\n  archive_dir: /a\n  spool_settle_s: 0\n",
        3,
        "storage.spool_settle_s",
        "must be a finite number greater than 0, got 0",
    ),
    (
        "storage:\n  archive_dir: /a\n\n  spool_sweep_s: soon\n",
        4,
        "storage.spool_sweep_s",
        "expected a number of seconds, got string 'soon'",
    ),
    ("database:\n  pool_max: 0\n" + STORAGE, 2, "database.pool_max", "must be at least 1, got 0"),
    (
        "database:\n  pool_min: 2\n  pool_max: 1\n" + STORAGE,
        3,
        "database.pool_max",
        "pool_max (1) must be at least pool_min (2)",
    ),
    (
        "database:\n  pool_min: 6\n" + STORAGE,  # above the default pool_max of 5
        2,
        "database.pool_min",
        "pool_max (5) must be at least pool_min (6)",
    ),
    # seconds
    (
        "ari:\n  request_timeout_s: 0\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "must be a finite number greater than 0, got 0",
    ),
    (
        "ari:\n  request_timeout_s: -0.5\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "must be a finite number greater than 0, got -0.5",
    ),
    (
        "ari:\n  request_timeout_s: .inf\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "must be a finite number greater than 0, got .inf",
    ),
    (
        "ari:\n  request_timeout_s: '10'\n" + STORAGE,
        2,
        "ari.request_timeout_s",
        "expected a number of seconds, got string '10'",
    ),
    (
        "ari:\n  reconnect_initial_s: true\n" + STORAGE,
        2,
        "ari.reconnect_initial_s",
        "expected a number, got boolean 'true' (YAML reads unquoted yes/no/on/off/true/false as "
        "booleans)",
    ),
    (
        "ari:\n  reconnect_initial_s: 5\n  reconnect_max_s: 2\n" + STORAGE,
        3,
        "ari.reconnect_max_s",
        "reconnect_max_s (2) must be at least reconnect_initial_s (5)",
    ),
    (
        "ari:\n  reconnect_initial_s: 60\n" + STORAGE,  # above the default maximum of 30
        2,
        "ari.reconnect_initial_s",
        "reconnect_max_s (30) must be at least reconnect_initial_s (60)",
    ),
    # ari
    (
        "ari:\n  url: ftp://pbx:8088\n" + STORAGE,
        2,
        "ari.url",
        "must be an http:// or https:// URL, got 'ftp://pbx:8088'",
    ),
    (
        "ari:\n  url: pbx:8088\n" + STORAGE,
        2,
        "ari.url",
        "must be an http:// or https:// URL, got 'pbx:8088'",
    ),
    (
        "ari:\n  url: http://pbx:8088/ari/\n" + STORAGE,
        2,
        "ari.url",
        "must not end in /ari (it is appended): use 'http://pbx:8088'",
    ),
    (
        "ari:\n  url: http://pbx:99999\n" + STORAGE,
        2,
        "ari.url",
        "is not a valid URL: Port out of range 0-65535",
    ),
    ("ari:\n  url: http:///ari\n" + STORAGE, 2, "ari.url", "has no host: 'http:///ari'"),
    (
        "ari:\n  url: http://u:pw@pbx:8088\n" + STORAGE,
        2,
        "ari.url",
        "must not contain credentials; use ari.username and ari.password",
    ),
    (
        "ari:\n  url: http://pbx:8088/?x=1\n" + STORAGE,
        2,
        "ari.url",
        "must not have a query or fragment: 'http://pbx:8088/?x=1'",
    ),
    (
        "ari:\n  app: my app\n" + STORAGE,
        2,
        "ari.app",
        "must be letters, digits, '_' or '-' only, got 'my app'",
    ),
    (
        "ari:\n  username: 'a:b'\n" + STORAGE,
        2,
        "ari.username",
        "must be non-empty, without ':' or surrounding spaces (HTTP basic auth)",
    ),
    # secrets: messages never show the value
    (
        "ari:\n  password: 12345\n" + STORAGE,
        2,
        "ari.password",
        "expected a string, got integer; quote it",
    ),
    (
        "ari:\n  password: on\n" + STORAGE,
        2,
        "ari.password",
        "expected a string, got boolean (YAML reads unquoted yes/no/on/off/true/false as "
        "booleans); quote it",
    ),
    ("ari:\n  password: ''\n" + STORAGE, 2, "ari.password", "must not be empty"),
    (
        "database:\n  dsn: mysql://root:hunter2@db/x\n" + STORAGE,
        2,
        "database.dsn",
        "must be a postgresql:// (or postgres://) URL",
    ),
    # storage
    (
        "storage:\n  spool_dir: spool\n  archive_dir: /a\n",
        2,
        "storage.spool_dir",
        "must be an absolute path, got 'spool'",
    ),
    (
        "storage:\n  archive_dir: ~/archive\n",
        2,
        "storage.archive_dir",
        "must be an absolute path, got '~/archive'",
    ),
    (
        "storage:\n  archive_dir:\n",
        2,
        "storage.archive_dir",
        "expected a string, got nothing (null)",
    ),
    ("storage:\n  format: wav\n", 1, "storage.archive_dir", "required key is missing"),
    # storage.backend and its object store
    (
        "storage:\n  archive_dir: /a\n  backend: S3\n",
        3,
        "storage.backend",
        "must be one of local, s3, got 'S3'; did you mean 's3'?",
    ),
    (
        "storage:\n  archive_dir: /a\n  backend: s3\n",
        3,
        "storage.backend",
        "backend s3 needs an s3: section (bucket, endpoint, keys)",
    ),
    (
        "storage:\n  archive_dir: /a\n  backend: s3\n  s3:\n    endpoint: http://h:8333\n",
        4,
        "storage.s3.bucket",
        "required key is missing",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: Rec_Archive\n",
        4,
        "storage.s3.bucket",
        "must be an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-', starting and "
        "ending with a letter or digit, got 'Rec_Archive'",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    endpoint: h:8333\n",
        5,
        "storage.s3.endpoint",
        "must be an http:// or https:// URL, got 'h:8333'",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    endpoint: http://h/rec\n",
        5,
        "storage.s3.endpoint",
        "must be scheme://host[:port] only (the bucket is its own key), got 'http://h/rec'",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    access_key: AK\n",
        5,
        "storage.s3.access_key",
        "access_key needs secret_key: set it or VERBATIM_S3_SECRET_KEY",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    retry_max_s: 0\n",
        5,
        "storage.s3.retry_max_s",
        "must be a finite number greater than 0, got 0",
    ),
    (
        "storage:\n  archive_dir: /a\n  compact:\n    format: aac\n",
        4,
        "storage.compact.format",
        "must be one of opus, mp3, got 'aac'",
    ),
    (
        "storage:\n  archive_dir: /a\n  compact:\n    format: mp3\n    bitrate: 500k\n",
        5,
        "storage.compact.bitrate",
        "must be a bitrate from 8k to 320k (kbit/s), got '500k'",
    ),
    (
        "storage:\n  archive_dir: /a\n  compact:\n    bitrate: 24 kbps\n",
        4,
        "storage.compact.bitrate",
        "must be a bitrate from 6k to 510k (kbit/s), got '24 kbps'",
    ),
    (
        "storage:\n  archive_dir: /a\n  compact:\n    keep_orignal: false\n",
        4,
        "storage.compact.keep_orignal",
        "unknown key; did you mean 'keep_original'?",
    ),
    (
        "storage:\n  archive_dir: /a\n  backend: s3\n  s3:\n    bucket: rec\n"
        "  compact:\n    format: opus\n",
        6,
        "storage.compact",
        "compact copies are made in the local archive only: not with backend s3 (yet)",
    ),
    (
        "storage:\n  archive_dir: /a\n  encryption:\n    key_id: k1\n"
        "    master_key_env: VERBATIM_MASTER_KEY\n  compact:\n    format: opus\n",
        6,
        "storage.compact",
        "compact copies are not made of encrypted recordings (yet): use storage.compact or "
        "storage.encryption, not both",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    part_size_mb: 4\n",
        5,
        "storage.s3.part_size_mb",
        "must be between 5 and 5120, got 4",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    multipart_threshold_mb: 0\n",
        5,
        "storage.s3.multipart_threshold_mb",
        "must be at least 1, got 0",
    ),
    (
        "storage:\n  archive_dir: /a\n  s3:\n    bucket: rec\n    regoin: eu\n",
        5,
        "storage.s3.regoin",
        "unknown key; did you mean 'region'?",
    ),
    ("asterisk:\n  label: sf\n", 1, "storage.archive_dir", "required key is missing"),
    (
        "# comment\n\nasterisk:\n  label: sf\nstorage:\n  format: wav\n",
        5,
        "storage.archive_dir",
        "required key is missing",
    ),
    (
        "storage:\n  archive_dir: /a\n  format: wave\n",
        3,
        "storage.format",
        "must be one of wav, gsm, ulaw, alaw, sln16, got 'wave'; did you mean 'wav'?",
    ),
    (
        "storage:\n  archive_dir: /a\n  format: mp3\n",
        3,
        "storage.format",
        "must be one of wav, gsm, ulaw, alaw, sln16, got 'mp3'",
    ),
    # dial strings
    (
        "calls:\n  dial_strings:\n    inbound: PJSIP/{number}\n" + STORAGE,
        3,
        "calls.dial_strings.inbound",
        "only the placeholder {target} is allowed, got {number}",
    ),
    (
        "calls:\n  dial_strings:\n    outbound: PJSIP/{target}@trunk\n" + STORAGE,
        3,
        "calls.dial_strings.outbound",
        "only the placeholder {number} is allowed, got {target}",
    ),
    (
        "calls:\n  dial_strings:\n    internal: PJSIP/{target:>5}\n" + STORAGE,
        3,
        "calls.dial_strings.internal",
        "only the placeholder {target} is allowed, got {target:>5}",
    ),
    (
        "calls:\n  dial_strings:\n    internal: PJSIP/{target!r}\n" + STORAGE,
        3,
        "calls.dial_strings.internal",
        "only the placeholder {target} is allowed, got {target!r}",
    ),
    (
        "calls:\n  dial_strings:\n    inbound: PJSIP/{}\n" + STORAGE,
        3,
        "calls.dial_strings.inbound",
        "only the placeholder {target} is allowed, got {}",
    ),
    (
        "calls:\n  dial_strings:\n    outbound: PJSIP/trunk\n" + STORAGE,
        3,
        "calls.dial_strings.outbound",
        "must contain {number}, e.g. PJSIP/{number}",
    ),
    (
        "calls:\n  dial_strings:\n    inbound: PJSIP/{target\n" + STORAGE,
        3,
        "calls.dial_strings.inbound",
        "expected '}' before end of string; write {{ or }} for a literal brace",
    ),
    (
        "calls:\n  dial_strings:\n    inbound: '{target}'\n" + STORAGE,
        3,
        "calls.dial_strings.inbound",
        "must look like Technology/resource, e.g. PJSIP/{target}, got '{target}'",
    ),
    (
        "calls:\n  dial_strings:\n    inbound: PJSIP/ {target}\n" + STORAGE,
        3,
        "calls.dial_strings.inbound",
        "must look like Technology/resource, e.g. PJSIP/{target}, got 'PJSIP/ {target}'",
    ),
    # media, region, prefix, extensions
    (
        "calls:\n  consent_prompt: verbatim/consent\n" + STORAGE,
        2,
        "calls.consent_prompt",
        "must be an ARI media URI starting with sound:, recording:, tone:, got 'verbatim/consent'",
    ),
    (
        "calls:\n  ringback: 'sound:'\n" + STORAGE,
        2,
        "calls.ringback",
        "must be an ARI media URI starting with sound:, recording:, tone:, got 'sound:'",
    ),
    (
        "calls:\n  default_region: us\n" + STORAGE,
        2,
        "calls.default_region",
        "must be an ISO 3166 region code such as US or GB, got 'us'; did you mean 'US'?",
    ),
    (
        "calls:\n  default_region: UK\n" + STORAGE,
        2,
        "calls.default_region",
        "must be an ISO 3166 region code such as US or GB, got 'UK'",
    ),
    (
        "calls:\n  outside_line_prefix: '9#'\n" + STORAGE,
        2,
        "calls.outside_line_prefix",
        "must be digits only (or \"\" for none), got '9#'",
    ),
    (
        "calls:\n  extensions: '^[0-9'\n" + STORAGE,
        2,
        "calls.extensions",
        "is not a valid regular expression: unterminated character set at position 1",
    ),
    # departments
    (
        'calls:\n  departments:\n    Intake: ["201", "202"]\n    Litigation:\n'
        '      - "210"\n      - "202"\n' + STORAGE,
        6,
        "calls.departments.Litigation[1]",
        "extension 202 is in both Intake and Litigation",
    ),
    (
        'calls:\n  departments:\n    Intake: ["201", "201"]\n' + STORAGE,
        3,
        "calls.departments.Intake[1]",
        "extension 201 is listed twice in Intake",
    ),
    (
        "calls:\n  departments:\n    Intake: [201]\n" + STORAGE,
        3,
        "calls.departments.Intake[0]",
        "expected an extension (a string), got integer 201; quote it",
    ),
    (
        "calls:\n  departments:\n    Intake:\n      - 0201\n" + STORAGE,
        4,
        "calls.departments.Intake[0]",
        "expected an extension (a string), got integer 0201; quote it",
    ),
    (
        'calls:\n  departments:\n    Intake: [["201"]]\n' + STORAGE,
        3,
        "calls.departments.Intake[0]",
        "expected an extension (a string), got a list",
    ),
    (
        'calls:\n  departments:\n    Intake: ["2"]\n' + STORAGE,
        3,
        "calls.departments.Intake[0]",
        "'2' does not match calls.extensions (^[0-9]{2,6}$)",
    ),
    (
        'calls:\n  extensions: "^1[0-9]{2}$"\n  departments:\n    Intake: ["201"]\n' + STORAGE,
        4,
        "calls.departments.Intake[0]",
        "'201' does not match calls.extensions (^1[0-9]{2}$)",
    ),
    (
        'calls:\n  departments:\n    Intake: "201"\n' + STORAGE,
        3,
        "calls.departments.Intake",
        "expected a list of extensions, got a string",
    ),
    (
        'calls:\n  departments:\n    "": ["201"]\n' + STORAGE,
        3,
        "calls.departments.",
        "department name must not be empty",
    ),
    (
        'calls:\n  departments:\n    100: ["201"]\n' + STORAGE,
        3,
        "calls.departments",
        "keys must be strings, got integer '100'; quote it",
    ),
    (
        "calls:\n  departments: [Intake]\n" + STORAGE,
        2,
        "calls.departments",
        "expected a mapping, got a list",
    ),
    # logging
    (
        "logging:\n  level: verbose\n" + STORAGE,
        2,
        "logging.level",
        "must be one of debug, info, warning, error, got 'verbose'",
    ),
    (
        "logging:\n  level: warn\n" + STORAGE,
        2,
        "logging.level",
        "must be one of debug, info, warning, error, got 'warn'; did you mean 'warning'?",
    ),
    (
        "logging:\n  format: text\n" + STORAGE,
        2,
        "logging.format",
        "must be one of json, console, got 'text'",
    ),
    # in-call controls and hooks
    (
        "calls:\n  controls:\n    stop: '*3'\n" + STORAGE,
        3,
        "calls.controls.stop",
        "stop and start go together: set both or neither",
    ),
    (
        "calls:\n  controls:\n    pause: '*1'\n    resume: '1'\n" + STORAGE,
        3,
        "calls.controls.pause",
        "'*1' and resume's '1' cannot be told apart as digits arrive: choose codes that do not "
        "end one another",
    ),
    (
        "hooks:\n  enabled: true\n  host: 0.0.0.0\n" + STORAGE,
        3,
        "hooks.host",
        "'0.0.0.0' is not a loopback address: FastAGI has no authentication, so anyone who "
        "reaches it could stop recordings; keep Asterisk on this host, or set "
        "hooks.allow_non_loopback on a trusted network",
    ),
    (
        "hooks:\n  reply_timeout_s: 0\n" + STORAGE,
        2,
        "hooks.reply_timeout_s",
        "must be a finite number greater than 0, got 0",
    ),
    (
        "hooks:\n  enable: true\n" + STORAGE,
        2,
        "hooks.enable",
        "unknown key; did you mean 'enabled'?",
    ),
    # ops: metrics and free-space watermarks
    (
        "metrics:\n  host: 192.0.2.10\n" + STORAGE,
        2,
        "metrics.host",
        "'192.0.2.10' is not a loopback address: /metrics has no authentication and tells who "
        "is on the phone how often; keep it on 127.0.0.1 (scrape through a proxy or an SSH "
        "tunnel), or set metrics.allow_non_loopback on a trusted network",
    ),
    ("metrics:\n  port: 0\n" + STORAGE, 2, "metrics.port", "must be between 1 and 65535, got 0"),
    (
        "metrics:\n  health_log_s: -1\n" + STORAGE,
        2,
        "metrics.health_log_s",
        "must be a finite number greater than 0, got -1",
    ),
    ("metric:\n  port: 9480\n" + STORAGE, 1, "metric", "unknown key; did you mean 'metrics'?"),
    (
        "storage:\n  archive_dir: /a\n  min_free_mb: 1000\n  low_free_mb: 500\n",
        4,
        "storage.low_free_mb",
        "low_free_mb (500) is the warning mark: it must be at least min_free_mb (1000), the "
        "critical one",
    ),
    (
        "storage:\n  archive_dir: /a\n  on_critical: stop\n",
        3,
        "storage.on_critical",
        "must be one of keep_recording, refuse_new, got 'stop'",
    ),
    # numbers too large for Python's conversions: a traceback with no key before
    (
        "storage:\n  archive_dir: /a\n  spool_settle_s: " + "9" * 400 + "\n",
        3,
        "storage.spool_settle_s",
        f"is too large, got {'9' * 40}...",
    ),
    (
        "storage:\n  archive_dir: /a\n  spool_settle_s: 0x" + "F" * 300 + "\n",
        3,
        "storage.spool_settle_s",
        f"is too large, got 0x{'F' * 38}...",
    ),
    (
        "storage:\n  archive_dir: /a\n  min_free_mb: " + "9" * 5000 + "\n",
        3,
        "storage.min_free_mb",
        f"is too large, got {'9' * 40}...",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "verbatim.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "line", "key", "message"), CASES)
def test_bad_config_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    err = caught.value
    assert (err.file, err.line, err.key, err.message) == (str(path), line, key, message)
    assert str(err) == f"{path}:{line}: {key}: {message}"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "ari:\n  username: [x\n",
            3,
            "invalid YAML: while parsing a flow sequence, expected ',' "
            "or ']', but got '<stream end>'",
        ),
        (
            "ari:\n\tusername: x\n",
            2,
            "invalid YAML: while scanning for the next token, found "
            "character '\\t' that cannot start any token",
        ),
        ("ari:\n  username: a: b\n", 2, "invalid YAML: mapping values are not allowed here"),
        (
            "ari: {}\n---\nari: {}\n",
            2,
            "invalid YAML: expected a single document in the stream, but found another document",
        ),
    ],
)
def test_yaml_syntax_error_has_line_but_no_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    assert (caught.value.line, caught.value.key) == (line, None)
    assert str(caught.value) == f"{path}:{line}: {message}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"asterisk:\n  label: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    assert str(caught.value) == f"{path}: cannot read: not UTF-8 (invalid continuation byte)"


@pytest.mark.parametrize(
    "text",
    [
        "ari:\n  password: 12345\n" + STORAGE,
        "ari:\n  password: on\n" + STORAGE,
        "database:\n  dsn: mysql://root:hunter2@db/x\n" + STORAGE,
        "ari:\n  url: http://u:hunter2@pbx:8088\n" + STORAGE,
        "ari:\n  url: ftp://u:hunter2@pbx\n" + STORAGE,
        "ari:\n  url: http://u:hunter2@\n" + STORAGE,
    ],
)
def test_errors_about_secrets_do_not_show_them(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), ENV)
    shown = str(caught.value) + repr(caught.value)
    for secret in ("12345", "'on'", "hunter2", "s3cret-pw", "db-s3cret"):
        assert secret not in shown
