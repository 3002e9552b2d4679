"""What a call's tag may be (matter numbers, notes): one rule for every way a tag arrives.

A tag is searched by exact match (`tag=` in the API) and shown to people, so two tags that look
alike must not be two rows, and nothing in one may be invisible or break a line. call_tags' own
CHECK (0002) is the database's last word; this is stricter.
"""

from __future__ import annotations

import unicodedata
from typing import Final

MAX_TAG: Final = 100  # call_tags.tag's CHECK (0002), repeated by control_requests.tag (0005)
MAX_TAGS_PER_CALL: Final = 50  # each is kept in the call's state, written at every change
# Control (Cc), format (Cf: zero-width space, direction marks), surrogates (Cs), line and
# paragraph separators (Zl, Zp), unassigned (Cn) and private-use (Co) characters.
_BAD_CHARACTERS: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn", "Co"})


def normal_tag(tag: str) -> str:
    """The form a tag is stored in: NFC (so "é" typed two ways is one tag)."""
    return unicodedata.normalize("NFC", tag)


def tag_problem(tag: str) -> str | None:
    """Why `tag` (as given) cannot be a tag, or None."""
    tag = normal_tag(tag)
    if not 1 <= len(tag) <= MAX_TAG:
        return f"must be 1 to {MAX_TAG} characters"
    if any(unicodedata.category(ch) in _BAD_CHARACTERS for ch in tag):
        return "must not contain control, format, separator or unassigned characters"
    if tag != tag.strip() or not tag.strip():
        return "must not start or end with a space, nor be only spaces"
    if unicodedata.category(tag[0]).startswith("M"):
        return "must not start with a combining mark"
    return None
