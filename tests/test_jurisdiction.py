"""Jurisdiction of a party: geocoder text to a state, overrides, offices, defaults; strictest."""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType

import pytest

from recorder.policy import Numbering, Policy, jurisdiction_of, strictest
from recorder.policy.model import JurisdictionConfig, Mode, NumberPattern, Office
from recorder.policy.states import DEFAULT_ALL_PARTY_STATES, STATES, state_from_geocoder


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("San Francisco, CA", "CA"),
        ("Los Angeles, CA", "CA"),
        ("California", "CA"),
        ("New York, NY", "NY"),
        ("New York", "NY"),
        ("Washington D.C.", "DC"),
        ("Washington DC", "DC"),
        ("District of Columbia", "DC"),
        ("Washington State", "WA"),
        ("Washington", None),  # could be either: left to the strict default
        ("Kansas City, MO", "MO"),
        ("  massachusetts ", "MA"),
        ("West Virginia", "WV"),
        ("", None),
        ("Ontario", None),
        ("Puerto Rico", None),
        ("Springfield, XX", None),
    ],
)
def test_state_from_geocoder_text(text: str, state: str | None) -> None:
    assert state_from_geocoder(text) == state


def test_default_table_is_the_usual_twelve() -> None:
    assert sorted(DEFAULT_ALL_PARTY_STATES) == sorted(
        ["CA", "CT", "FL", "IL", "MD", "MA", "MI", "MT", "NV", "NH", "PA", "WA"]
    )
    assert len(STATES) == 51 and set(STATES) >= DEFAULT_ALL_PARTY_STATES


POLICY = Policy(
    jurisdiction=JurisdictionConfig(
        offices=(
            Office("San Francisco", "CA", (NumberPattern(regex=re.compile(r"^2")),)),
            Office("New York", "NY", (NumberPattern(regex=re.compile(r"^3")),)),
        ),
        extensions=MappingProxyType({"399": "FL"}),
        numbers=MappingProxyType({"+1212555": "NJ", "+12125550142": "CA"}),
        regions=MappingProxyType({"GB": "one-party"}),
    ),
    numbering=Numbering(extension_pattern=r"^[0-9]{3}$", outside_line_prefix="9"),
)


@pytest.mark.parametrize(
    ("number", "place", "mode", "source", "detail"),
    [
        ("+14155550100", "US-CA", "all-party", "geocoder", "'San Francisco, CA'"),
        ("(415) 555-0100", "US-CA", "all-party", "geocoder", "'San Francisco, CA'"),
        ("914155550100", "US-CA", "all-party", "geocoder", "'San Francisco, CA'"),
        ("sip:+17135550100@trunk", "US-TX", "one-party", "geocoder", "'Texas'"),
        ("+12025550100", "US-DC", "one-party", "geocoder", "'Washington D.C.'"),
        ("+12065550100", "US-WA", "all-party", "geocoder", "'Washington State'"),
        ("+12125550142", "US-CA", "all-party", "override", "+12125550142 in jurisdiction.numbers"),
        ("+12125550100", "US-NJ", "one-party", "override", "+1212555 in jurisdiction.numbers"),
        ("+12125560100", "US-NY", "one-party", "geocoder", "'New York, NY'"),
        ("201", "US-CA", "all-party", "extension", "office 'San Francisco'"),
        ("301", "US-NY", "one-party", "extension", "office 'New York'"),
        ("399", "US-FL", "all-party", "extension", "jurisdiction.extensions"),
        ("500", "unknown", "all-party", "default", "extension of no office"),
        (None, "unknown", "all-party", "default", "withheld number"),
        ("anonymous", "unknown", "all-party", "default", "withheld number"),
        ("5550100", "unknown", "all-party", "default", "not a valid number"),
        ("+18005550100", "US", "all-party", "default", "toll-free number"),
        ("+14165550100", "CA", "all-party", "default", "outside the US (CA)"),
        ("+18765550100", "JM", "all-party", "default", "outside the US (JM)"),
        ("+17875550100", "PR", "all-party", "default", "outside the US (PR)"),
        ("+442079460958", "GB", "one-party", "region", "jurisdiction.regions"),
    ],
)
def test_jurisdiction_of(
    number: str | None, place: str, mode: str, source: str, detail: str
) -> None:
    j = jurisdiction_of(number, POLICY)
    assert (j.place, j.mode, j.source, j.detail) == (place, mode, source, detail)
    assert j.internal == (source == "extension" or detail == "extension of no office")


@pytest.mark.parametrize(
    ("number", "place", "detail"),
    [
        ("201", "US-CA", "office 'San Francisco'"),  # its own office still wins
        ("399", "US-FL", "jurisdiction.extensions"),
        ("500", "US-NY", "default office 'New York'"),
        ("+14155550100", "US-CA", "'San Francisco, CA'"),  # outside numbers are not affected
    ],
)
def test_an_extension_of_no_office_takes_the_default_office(
    number: str, place: str, detail: str
) -> None:
    policy = replace(POLICY, jurisdiction=replace(POLICY.jurisdiction, default_office="New York"))
    j = jurisdiction_of(number, policy)
    assert (j.place, j.detail, j.internal) == (place, detail, not number.startswith("+"))


def test_table_and_default_mode_come_from_the_policy() -> None:
    one_party = Policy(
        jurisdiction=JurisdictionConfig(
            all_party_states=frozenset({"TX"}), default_mode="one-party"
        )
    )
    assert jurisdiction_of("+17135550100", one_party).mode == "all-party"
    assert jurisdiction_of("+14155550100", one_party).mode == "one-party"
    assert jurisdiction_of(None, one_party).mode == "one-party"


@pytest.mark.parametrize(
    ("modes", "result"),
    [
        ([], "one-party"),
        (["one-party"], "one-party"),
        (["one-party", "all-party"], "all-party"),
        (["all-party", "all-party"], "all-party"),
    ],
)
def test_strictest(modes: list[Mode], result: Mode) -> None:
    assert strictest(modes) == result
