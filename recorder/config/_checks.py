"""Value checks: each raises Invalid saying what is wrong, or returns the value to keep."""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import phonenumbers

from recorder.config._reader import Check, Invalid, suggest
from recorder.config.model import MEDIA_SCHEMES


def one_of(choices: Sequence[str], *, fold_case: bool = False) -> Check:
    def check(value: str) -> str:
        found = value.lower() if fold_case else value
        if found not in choices:
            hint = suggest(value, choices)
            raise Invalid(f"must be one of {', '.join(choices)}, got '{value}'{hint}")
        return found

    return check


def hh_mm(value: str) -> str:
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        raise Invalid(f"expected a time of day HH:MM (00:00 to 23:59), got '{value}'")
    return value


def non_empty(value: str) -> str:
    if not value.strip():
        raise Invalid("must not be empty")
    return value


def name(value: str) -> str:
    """A name shown to people and passed to the dialplan (a rule's, a list entry's): not
    empty, no control characters (a tab or a line end in one was refused at the first call
    it decided)."""
    non_empty(value)
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise Invalid(f"must not contain control characters (found {bad!r})")
    return value


def username(value: str) -> str:
    if not value or ":" in value or value != value.strip():
        raise Invalid("must be non-empty, without ':' or surrounding spaces (HTTP basic auth)")
    return value


def ari_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - reading the port is what validates it
    except ValueError as exc:
        raise Invalid(f"is not a valid URL: {exc}") from None
    if parts.username is not None or parts.password is not None:
        # Checked first so no message below echoes a password. Credentials in URLs end up in logs.
        raise Invalid("must not contain credentials; use ari.username and ari.password")
    if parts.scheme not in ("http", "https"):
        raise Invalid(f"must be an http:// or https:// URL, got '{value}'")
    if not parts.hostname:
        raise Invalid(f"has no host: '{value}'")
    if parts.query or parts.fragment:
        raise Invalid(f"must not have a query or fragment: '{value}'")
    url = value.strip().rstrip("/")
    if url.endswith("/ari"):
        raise Invalid(f"must not end in /ari (it is appended): use '{url[:-4]}'")
    return url


def endpoint_url(value: str) -> str:
    """An S3 endpoint: http(s)://host[:port], no credentials, path or query."""
    url = ari_url(value)
    if urlsplit(url).path:
        raise Invalid("must be scheme://host[:port] only (the bucket is its own key), "
                      f"got '{value}'")
    return url


def _matching(pattern: str, value: str, must: str) -> str:
    """`value` if all of it matches `pattern`, else Invalid("must <must>, got '<value>'")."""
    if not re.fullmatch(pattern, value):
        raise Invalid(f"must {must}, got '{value}'")
    return value


def bucket(value: str) -> str:
    # S3's bucket naming rules (what every S3-compatible store accepts).
    return _matching(r"(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value,
                     "be an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-', "
                     "starting and ending with a letter or digit")  # fmt: skip


def app_name(value: str) -> str:
    return _matching(r"[A-Za-z0-9_-]+", value, "be letters, digits, '_' or '-' only")


def dsn(value: str) -> str:
    # Never echo the value: a DSN usually carries the database password.
    if not value.startswith(("postgresql://", "postgres://")):
        raise Invalid("must be a postgresql:// (or postgres://) URL")
    return value


def absolute_path(value: str) -> str:
    if not PurePosixPath(value).is_absolute():
        raise Invalid(f"must be an absolute path, got '{value}'")
    return value


def media_uri(value: str) -> str:
    if not value.startswith(MEDIA_SCHEMES) or value.endswith(":"):
        schemes = ", ".join(MEDIA_SCHEMES)
        raise Invalid(f"must be an ARI media URI starting with {schemes}, got '{value}'")
    return value


def region(value: str) -> str:
    regions = phonenumbers.SUPPORTED_REGIONS
    if value not in regions:
        hint = f"; did you mean '{value.upper()}'?" if value.upper() in regions else ""
        raise Invalid(f"must be an ISO 3166 region code such as US or GB, got '{value}'{hint}")
    return value


def digits_only(value: str) -> str:
    if not re.fullmatch(r"[0-9]*", value):
        raise Invalid(f"must be digits only (or \"\" for none), got '{value}'")
    return value


def dtmf_code(value: str) -> str:
    if not re.fullmatch(r"[0-9*#A-D]{1,4}", value):
        raise Invalid(f"must be 1 to 4 DTMF keys (0-9 * # A-D), got '{value}'")
    return value


def regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise Invalid(f"is not a valid regular expression: {exc}") from None
    return value


def dial_string(placeholder: str) -> Check:
    """An Asterisk dial string template whose only placeholder is `{placeholder}`."""
    example = f"PJSIP/{{{placeholder}}}"

    def check(value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*/\S+", value):
            raise Invalid(f"must look like Technology/resource, e.g. {example}, got '{value}'")
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)]
        except ValueError as exc:
            raise Invalid(f"{exc}; write {{{{ or }}}} for a literal brace") from None
        used = False
        for name, spec, conversion in fields:
            if name is None:
                continue
            if name != placeholder or spec or conversion:
                shown = (
                    name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                )
                raise Invalid(f"only the placeholder {{{placeholder}}} is allowed, got {{{shown}}}")
            used = True
        if not used:
            raise Invalid(f"must contain {{{placeholder}}}, e.g. {example}")
        return value

    return check


def is_loopback(host: str) -> bool:
    """localhost or an address in 127.0.0.0/8 or ::1 (names other than localhost: no)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def key_id(value: str) -> str:
    # Stored with every wrapped data key and shown by `verbatim keys`: a short plain name.
    return _matching(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value, "be 1-64 letters, digits, "
                     "'.', '_' or '-', starting with a letter or digit")  # fmt: skip


def env_name(value: str) -> str:
    return _matching(r"[A-Za-z_][A-Za-z0-9_]*", value, "be an environment variable's name")


def key_location(value: str) -> str:
    """A master key's place: an absolute file path, or env:NAME."""
    if value.startswith("env:"):
        env_name(value.removeprefix("env:"))
        return value
    try:
        return absolute_path(value)
    except Invalid:
        raise Invalid("must be an absolute file path or env:NAME (an environment variable), "
                      f"got '{value}'") from None
def kbit_rate(low: int, high: int) -> Check:
    """A bitrate in ffmpeg's notation, "24k" (kbit/s), from low to high."""

    def check(value: str) -> str:
        found = re.fullmatch(r"([0-9]{1,4})k", value)
        if found is None or not low <= int(found[1]) <= high:
            raise Invalid(f"must be a bitrate from {low}k to {high}k (kbit/s), got '{value}'")
        return value

    return check
