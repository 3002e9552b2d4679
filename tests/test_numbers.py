"""recorder.common.numbers: literal cases, each written out by hand (not derived from the code)."""

from __future__ import annotations

import re

import pytest

from recorder.common.numbers import digits, is_extension, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # national formats, default region US
        ("(415) 555-0100", "+14155550100"),
        ("415.555.0100", "+14155550100"),
        ("415-555-0100", "+14155550100"),
        ("4155550100", "+14155550100"),
        ("14155550100", "+14155550100"),
        ("1 (415) 555-0100", "+14155550100"),
        ("  (415) 555-0100  ", "+14155550100"),
        # already international
        ("+1 415 555 0100", "+14155550100"),
        ("+14155550100", "+14155550100"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
        # international from the US: 011 is the real prefix ...
        ("011 44 20 7946 0958", "+442079460958"),
        ("01144 20 7946 0958", "+442079460958"),
        # ... but trunks also present 00; phonenumbers alone reads that as a national number
        ("0044 20 7946 0958", "+442079460958"),
        ("0049 30 901820", "+4930901820"),
        # URIs: the user part
        ("tel:+14155550100", "+14155550100"),
        ("tel:+1-415-555-0100", "+14155550100"),
        ("sip:+14155550100@pbx.example.com", "+14155550100"),
        ("sips:+14155550100@pbx.example.com:5061", "+14155550100"),
        ("sip:+14155550100@pbx.example.com;user=phone", "+14155550100"),
        ("SIP:4155550100@pbx", "+14155550100"),
        ("sip:%2B14155550100@pbx", "+14155550100"),
        ('"Alice Smith" <sip:+14155550100@pbx.example.com>', "+14155550100"),
        # extension suffixes are not part of E.164
        ("+1 415 555 0100 ext. 12", "+14155550100"),
        ("tel:+14155550100;ext=12", "+14155550100"),
        # full-width digits, as some softphones send them
        ("１４１５５５５０１００", "+14155550100"),
        # withheld / empty / anonymous
        (None, None),
        ("", None),
        ("   ", None),
        ("anonymous", None),
        ("Anonymous", None),
        ("ANONYMOUS", None),
        ("unknown", None),
        ("Restricted", None),
        ("Private", None),
        ("withheld", None),
        ("unavailable", None),
        ("sip:anonymous@anonymous.invalid", None),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>', None),
        # not valid numbers
        ("201", None),  # an extension
        ("5550100", None),  # 7-digit local number: no area code
        ("415555010", None),  # one digit short
        ("41555501001", None),  # one digit long
        ("+1415555010", None),
        ("+0", None),
        ("hello", None),
        ("sip:201@pbx", None),
    ],
)
def test_normalise_us(raw: str | None, expected: str | None) -> None:
    assert normalise(raw) == expected
    assert normalise(raw, default_region="US") == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("020 7946 0958", "GB", "+442079460958"),
        ("00442079460958", "GB", "+442079460958"),
        ("0044 20 7946 0958", "GB", "+442079460958"),
        ("001 415 555 0100", "GB", "+14155550100"),
        ("+1 415 555 0100", "GB", "+14155550100"),
        ("030 901820", "DE", "+4930901820"),
        ("4155550100", "GB", None),  # not a UK number
    ],
)
def test_normalise_other_regions(raw: str, region: str, expected: str | None) -> None:
    assert normalise(raw, default_region=region) == expected


@pytest.mark.parametrize(
    ("raw", "prefix", "region", "expected"),
    [
        ("914155550100", "9", "US", "+14155550100"),
        ("94155550100", "9", "US", "+14155550100"),
        ("9 1 (415) 555-0100", "9", "US", "+14155550100"),
        ("9-415-555-0100", "9", "US", "+14155550100"),
        ("9011442079460958", "9", "US", "+442079460958"),
        # no prefix dialled: the number as is
        ("14155550100", "9", "US", "+14155550100"),
        ("+14155550100", "9", "US", "+14155550100"),
        # the remainder "195550100" is not a number, so 919 stays the area code
        ("9195550100", "9", "US", "+19195550100"),
        # "9" alone is not stripped to nothing
        ("9", "9", "US", None),
        ("99", "9", "US", None),
        # the prefix is not stripped from an extension
        ("9201", "9", "US", None),
        # a two-digit prefix
        ("8114155550100", "81", "US", "+14155550100"),
        # "0" for an outside line, then the national 020...: not Egypt's +20
        ("00 20 7946 0958", "0", "GB", "+442079460958"),
        ("0020 7946 0958", "0", "GB", "+442079460958"),
        # empty prefix strips nothing
        ("914155550100", "", "US", None),
    ],
)
def test_normalise_strip_prefix(raw: str, prefix: str, region: str, expected: str | None) -> None:
    assert normalise(raw, default_region=region, strip_prefix=prefix) == expected


@pytest.mark.parametrize(
    ("raw", "pattern", "expected"),
    [
        ("201", r"^[0-9]{2,6}$", True),
        ("20", r"^[0-9]{2,6}$", True),
        ("123456", r"^[0-9]{2,6}$", True),
        ("2", r"^[0-9]{2,6}$", False),
        ("1234567", r"^[0-9]{2,6}$", False),
        ("4155550100", r"^[0-9]{2,6}$", False),
        ("+14155550100", r"^[0-9]{2,6}$", False),
        ("201a", r"^[0-9]{2,6}$", False),
        ("201\n", r"^[0-9]{2,6}$", True),  # surrounding whitespace is ignored
        ("", r"^[0-9]{2,6}$", False),
        (None, r"^[0-9]{2,6}$", False),
        # the whole string must match even when the pattern is not anchored
        ("2015", r"[0-9]{3}", False),
        ("201", r"[0-9]{3}", True),
        ("1201", r"1[0-9]{3}|2[0-9]{2}", True),
        ("201", re.compile(r"2[0-9]{2}"), True),
        ("301", re.compile(r"2[0-9]{2}"), False),
    ],
)
def test_is_extension(raw: str | None, pattern: str | re.Pattern[str], expected: bool) -> None:
    assert is_extension(raw, pattern) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (415) 555-0100", "14155550100"),
        ("415.555.0100", "4155550100"),
        ("sip:+14155550100@10.0.0.1", "14155550100"),  # the user part, not the host
        ("tel:+1-415-555-0100;ext=12", "14155550100"),
        ("ext. 201", "201"),
        ("0044 20", "004420"),
        ("１２３", "123"),
        ("anonymous", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_digits(raw: str | None, expected: str) -> None:
    assert digits(raw) == expected
