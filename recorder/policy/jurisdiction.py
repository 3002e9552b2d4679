"""Which recording law applies to a party: all-party or one-party consent. Pure.

An area code tells where a number was issued, not where its user is: a client with a 212 mobile
may live in California. So config can name a number's (or prefix's) or an extension's state
explicitly, and those entries win over the geocoder. Resolution order:
 1. withheld or empty                       -> default mode        (source "default")
 2. an extension: jurisdiction.extensions,
    then the office whose list matches it,
    then jurisdiction.default_office        -> that state          (source "extension")
    an extension of no office               -> default mode        (source "default")
 3. not a valid number after stripping the
    outside-line prefix                     -> default mode        (source "default")
 4. jurisdiction.numbers, longest prefix    -> that state          (source "override")
 5. outside the US (phone region, so +1 is
    also Canada and the Caribbean)          -> jurisdiction.regions (source "region"), else the
                                               default mode        (source "default")
 6. a US number: the geocoder's state       -> that state          (source "geocoder");
    toll-free or no single state            -> default mode        (source "default")
A state is all-party when it is in jurisdiction.all_party_states, else one-party. The default
mode is all-party unless configured: when in doubt, announce.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import phonenumbers

from recorder.common.numbers import is_extension, normalise
from recorder.policy.model import Mode, Policy
from recorder.policy.states import state_from_geocoder

Source = Literal["override", "extension", "geocoder", "region", "default"]
SOURCES: Final[tuple[Source, ...]] = ("override", "extension", "geocoder", "region", "default")


@dataclass(frozen=True)
class Jurisdiction:
    subject: str | None  # the number or extension as given
    e164: str | None
    internal: bool  # one of the firm's extensions
    region: str | None  # phone region (ISO 3166-1), e.g. US, CA, GB; None when unknown
    state: str | None  # two-letter US state (or DC) when known
    mode: Mode
    source: Source
    detail: str  # why, in words: "geocoder: 'San Francisco, CA'", "withheld", ...

    @property
    def place(self) -> str:
        """ "US-CA" for a state (ISO 3166-2), the region code otherwise, or "unknown"."""
        if self.state is not None:
            return f"US-{self.state}"
        return self.region or "unknown"


def strictest(modes: Iterable[Mode]) -> Mode:
    """all-party when any party's law requires it, else one-party."""
    return "all-party" if "all-party" in modes else "one-party"


def load_geocoder() -> None:
    """Load the geocoder's index now (~0.3 s of CPU, ~100 MB): the daemon does so at start, so
    its first caller does not wait for it."""
    from phonenumbers import geocoder

    geocoder.description_for_number(phonenumbers.parse("+12025550100"), "en")


def jurisdiction_of(number: str | None, policy: Policy) -> Jurisdiction:
    """The jurisdiction of one party, from its number or extension as presented or dialled."""
    j, n = policy.jurisdiction, policy.numbering
    raw = (number or "").strip()

    def default(detail: str, e164: str | None = None, region: str | None = None) -> Jurisdiction:
        internal = e164 is None and is_extension(raw, n.extension_pattern)
        return Jurisdiction(number, e164, internal, region, None, j.default_mode, "default", detail)

    def state(code: str, source: Source, detail: str, e164: str | None = None) -> Jurisdiction:
        mode: Mode = "all-party" if code in j.all_party_states else "one-party"
        return Jurisdiction(number, e164, e164 is None, "US", code, mode, source, detail)

    if is_extension(raw, n.extension_pattern):
        if raw in j.extensions:
            return state(j.extensions[raw], "extension", "jurisdiction.extensions")
        for office in j.offices:
            if any(p.matches(None, raw) for p in office.extensions):
                return state(office.state, "extension", f"office '{office.name}'")
        fallback = next((o for o in j.offices if o.name == j.default_office), None)
        if fallback is not None:
            return state(fallback.state, "extension", f"default office '{fallback.name}'")
        return default("extension of no office")
    e164 = normalise(raw, default_region=n.default_region, strip_prefix=n.outside_line_prefix)
    if e164 is None:
        withheld = not any(c.isdigit() for c in raw)
        return default("withheld number" if withheld else "not a valid number")
    prefix = max((p for p in j.numbers if e164.startswith(p)), key=len, default=None)
    if prefix is not None:
        return state(j.numbers[prefix], "override", f"{prefix} in jurisdiction.numbers", e164)
    region, text, toll_free = _place_of(e164)
    if region != "US":
        regional = j.regions.get(region) if region else None
        if regional is not None:
            detail = "jurisdiction.regions"
            return Jurisdiction(number, e164, False, region, None, regional, "region", detail)
        return default(f"outside the US ({region})", e164, region)
    found = state_from_geocoder(text)
    if found is not None:
        return state(found, "geocoder", f"'{text}'", e164)
    if toll_free:
        return default("toll-free number", e164, "US")
    return default(f"geocoder gave '{text}': no single state" if text else "no area", e164, "US")


@functools.lru_cache(maxsize=4096)  # a call's parties are looked up at every decision
def _place_of(e164: str) -> tuple[str | None, str, bool]:
    """The region of a valid E.164 number ("001" for +800 and the like) and, in the US, the
    geocoder's place and whether it is toll-free."""
    parsed = phonenumbers.parse(e164)
    region = phonenumbers.region_code_for_number(parsed)
    if region != "US":
        return region, "", False
    # Imported here: loading the geocoder's index takes ~0.3 s, which every `verbatim` command
    # (the daemon's restart included) would otherwise pay whether it resolves numbers or not.
    from phonenumbers import geocoder

    toll_free = phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE
    return region, geocoder.description_for_number(parsed, "en"), toll_free
