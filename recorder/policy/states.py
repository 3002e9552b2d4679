"""US states: codes, names, the default all-party table, and the geocoder's text mapped to a code.

THE DEFAULT TABLE IS NOT LEGAL ADVICE. Counsel must review it (and the firm's policy file, which
can replace it) before it governs any call. It lists the twelve states usually given as requiring
the consent of all parties to record a telephone call, after:
  - Reporters Committee for Freedom of the Press, "Reporter's Recording Guide",
    https://www.rcfp.org/reporters-recording-guide/
  - Digital Media Law Project, "Recording Phone Calls and Conversations",
    https://www.dmlp.org/legal-guide/recording-phone-calls-and-conversations
Statutes, for counsel's review: CA Penal Code § 632; CT Gen. Stat. § 52-570d; FL Stat.
§ 934.03; IL 720 ILCS 5/14-2; MD Cts. & Jud. Proc. § 10-402; MA Gen. Laws ch. 272 § 99; MI Comp.
Laws § 750.539c; MT Code § 45-8-213; NV Rev. Stat. § 200.620; NH Rev. Stat. § 570-A:2; PA 18
Pa.C.S. § 5704; WA Rev. Code § 9.73.030. Several are debated (Michigan's participant exception,
Nevada's phone/in-person split; Delaware and Oregon are all-party in some readings), which is
why the table is configuration, not code.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

# Two-letter code -> name, the 50 states and the District of Columbia. Territories (PR, GU, VI,
# AS, MP) have their own phone region codes and are handled as regions, not states.
STATES: Final = MappingProxyType(
    {
        "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas",
        "CA": "California", "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware",
        "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia", "HI": "Hawaii",
        "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
        "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
        "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
        "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
        "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
        "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
        "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
        "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
        "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
        "WY": "Wyoming",
    }
)  # fmt: skip

DEFAULT_ALL_PARTY_STATES: Final = frozenset(
    {"CA", "CT", "FL", "IL", "MD", "MA", "MI", "MT", "NV", "NH", "PA", "WA"}
)

# Full names as the geocoder writes them, lowercased, punctuation and spaces collapsed. Plain
# "washington" is left out on purpose: the geocoder says "Washington State" or "Washington
# D.C.", and a bare "Washington" could be either, so it stays unresolved (the strict default).
_NAMES: Final = {
    re.sub(r"[^a-z]+", " ", name.lower()).strip(): code
    for code, name in STATES.items()
    if code != "WA"
} | {
    "washington state": "WA",
    "washington d c": "DC",
    "washington dc": "DC",
    "district of columbia": "DC",
}


def _folded(text: str) -> str:
    return re.sub(r"[^a-z]+", " ", text.lower()).strip()


def state_from_geocoder(description: str) -> str | None:
    """The state code in phonenumbers' geocoder text, or None when it names no single state.

    The text is "San Francisco, CA", "California", "Washington D.C.", "Washington State", or ""
    (toll-free and other non-geographic numbers); only a whole name or a trailing ", XX" counts,
    so "Kansas City, MO" is Missouri and an unknown spelling stays unresolved.
    """
    text = description.strip()
    if not text:
        return None
    found = _NAMES.get(_folded(text))
    if found is not None:
        return found
    if "," in text:
        tail = text.rsplit(",", 1)[1].strip()
        if tail.upper() in STATES and len(tail) == 2:
            return tail.upper()
        return _NAMES.get(_folded(tail))
    return None
