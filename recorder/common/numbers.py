"""Phone numbers as Asterisk hands them to us, turned into E.164 for storage and search.

Caller ids arrive in every shape: national ("(415) 555-0100"), international ("+44 20 7946 0958"),
as SIP/tel URIs, with the PBX's outside-line prefix still on a dialled number, or withheld
("anonymous"). `normalise` maps all of them to "+14155550100" or None; the raw text is stored
beside it, so returning None for something unparseable loses nothing.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote

import phonenumbers

__all__ = ["digits", "is_extension", "normalise"]

# What Asterisk and carriers put in caller id when the number is withheld; compared lowercased.
_WITHHELD = frozenset(
    {"anonymous", "unknown", "unavailable", "restricted", "private", "withheld", "blocked"}
)
_URI_SCHEME = re.compile(r"^(?:sips?|tel):", re.IGNORECASE)


def _user_part(raw: str) -> str:
    """The number inside `"Name" <sip:+1415...@host;user=phone>` or `tel:+1415...;ext=1`."""
    text = raw.strip()
    if "<" in text and ">" in text:  # name-addr form: the URI is between the angle brackets
        text = text[text.index("<") + 1 : text.index(">")]
    if _URI_SCHEME.match(text):
        text = text.split(":", 1)[1]
        text = text.split("@", 1)[0].split(";", 1)[0]
        text = unquote(text)  # "%2B1415..." is a "+" escaped by some SIP stacks
    return text.strip()


def _e164(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse(text: str, region: str) -> str | None:
    found = _e164(text, region)
    if found is None and text.startswith("00"):
        # Trunks often present international callers as 00<country>… even in regions whose
        # international prefix is different (011 in the US, where phonenumbers reads "0044…" as a
        # national number and rejects it). No NANP number starts with 0, so this cannot misread.
        found = _e164("+" + text[2:], region)
    return found


@functools.lru_cache(maxsize=4096)  # a call's numbers are read again at every decision and dial
def normalise(raw: str | None, *, default_region: str = "US", strip_prefix: str = "") -> str | None:
    """E.164 form of `raw`, or None when it is withheld, empty or not a valid number.

    `default_region` applies to numbers written without a country code. `strip_prefix` is the
    PBX's outside-line prefix (e.g. "9"): it is removed only when what is left is itself a valid
    number, so "914155550100" becomes +14155550100 while "9" alone or "9195550100" (a valid
    919 area-code number whose remainder is not) are left as dialled.
    """
    if raw is None:
        return None
    text = _user_part(raw)
    if not text or text.lower() in _WITHHELD or not any(ch.isdigit() for ch in text):
        return None
    if strip_prefix and text.startswith(strip_prefix):
        rest = text[len(strip_prefix) :].lstrip(" -.,")
        if any(ch.isdigit() for ch in rest):
            stripped = _parse(rest, default_region)
            if stripped is not None:
                return stripped
    return _parse(text, default_region)


def is_extension(raw: str | None, pattern: str | re.Pattern[str]) -> bool:
    """Whether `raw` is an internal extension: the whole string must match `pattern`."""
    if raw is None:
        return False
    return re.fullmatch(pattern, raw.strip()) is not None


def digits(raw: str | None) -> str:
    """Only the digits of `raw`, as ASCII ("+1 (415) 555-0100" → "14155550100"), for search.

    Of a SIP/tel URI only the user part counts: a host's digits would match any search.
    """
    if raw is None:
        return ""
    return "".join(str(int(ch)) for ch in _user_part(raw) if ch.isdecimal())
