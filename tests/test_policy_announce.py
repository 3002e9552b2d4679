"""Who hears which prompt: at the start, on answer, and when a party joins."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import pytest

from recorder.policy import Party, Policy, announcements_at_start, announcements_on_join
from recorder.policy.model import (
    Announcements,
    JurisdictionConfig,
    Mode,
    NumberPattern,
    Office,
    OptOut,
)

POLICY = Policy()
# The firm's extensions hear prompts too (announcements.to_extensions: true).
TO_EXTENSIONS = Policy(announcements=Announcements(to_extensions=True))
# Extensions of no office are in the New York office (one-party).
NY_OFFICE = Policy(
    jurisdiction=JurisdictionConfig(
        offices=(Office("New York", "NY", (NumberPattern(prefix="3"),)),),
        default_office="New York",
    )
)
CA, NY, TX, WITHHELD, EXT = "+14155550100", "+12125550100", "+17135550100", None, "201"
BOTH = ["caller: all-party en (before-bridge)", "callee: all-party en (on-answer)"]


def said(anns: Sequence[object]) -> list[str]:
    return [str(a) for a in anns]


@pytest.mark.parametrize(
    ("caller", "callee", "policy", "expected"),
    [
        (NY, TX, POLICY, ["caller: one-party en (before-bridge)"]),
        (NY, CA, POLICY, BOTH),
        (CA, TX, POLICY, BOTH),
        (WITHHELD, TX, POLICY, BOTH),
        # 201 is an extension of no office: the all-party default, but by default the firm's
        # own extensions hear no prompt: only the outside party does.
        (NY, EXT, POLICY, ["caller: all-party en (before-bridge)"]),
        (EXT, NY, POLICY, ["callee: all-party en (on-answer)"]),
        (EXT, "202", POLICY, []),
        (NY, EXT, TO_EXTENSIONS, BOTH),
        (EXT, NY, TO_EXTENSIONS, BOTH),
        (EXT, CA, TO_EXTENSIONS, BOTH),
        # a default office in a one-party state: New York to 201 is one-party
        (NY, EXT, NY_OFFICE, ["caller: one-party en (before-bridge)"]),
        (CA, EXT, NY_OFFICE, ["caller: all-party en (before-bridge)"]),
        (EXT, TX, NY_OFFICE, []),
    ],
)
def test_at_start(caller: str | None, callee: str, policy: Policy, expected: list[str]) -> None:
    assert (
        said(announcements_at_start(Party("caller", caller), Party("callee", callee), policy))
        == expected
    )


def test_nothing_is_announced_on_a_call_not_recorded() -> None:
    assert (
        announcements_at_start(Party("caller", CA), Party("callee", NY), POLICY, recording=False)
        == []
    )
    joined = announcements_on_join([Party("caller", NY)], Party("t", CA), POLICY, recording=False)
    assert joined == []


def test_media_language_and_opt_out_key() -> None:
    policy = Policy(
        announcements=Announcements(
            languages=MappingProxyType({"+52": "es", "+5255": "es-MX"}), media_prefix="sound:firm/"
        ),
        opt_out=OptOut(dtmf="#"),
    )
    (a, b) = announcements_at_start(Party("caller", "+525512345678"), Party("callee", CA), policy)
    assert (a.language, a.prompt, a.media, a.opt_out_dtmf) == (
        "es-MX",
        "consent-all-party-es-MX",
        "sound:firm/consent-all-party-es-MX",
        "#",
    )
    assert (b.language, b.media) == ("en", "sound:firm/consent-all-party-en")
    # Monterrey: +52 but not +5255, so the shorter prefix applies.
    (c, _) = announcements_at_start(Party("caller", "+528155550100"), Party("callee", TX), policy)
    assert c.language == "es"


@pytest.mark.parametrize(
    ("present", "new", "policy", "expected"),
    [
        # one-party call, one-party newcomer: nothing
        ([("caller", NY, "one-party")], ("t1", TX), POLICY, []),
        # the strictest rule becomes all-party: everyone present hears it
        (
            [("caller", NY, "one-party"), ("callee", TX, None)],
            ("t1", CA),
            POLICY,
            [
                "caller: all-party en (on-join)",
                "callee: all-party en (on-join)",
                "t1: all-party en (on-join)",
            ],
        ),
        # already all-party: only those who have not heard the all-party prompt
        (
            [("caller", CA, "all-party"), ("callee", NY, "all-party")],
            ("t1", TX),
            POLICY,
            ["t1: all-party en (on-join)"],
        ),
        ([("caller", CA, "all-party")], ("t1", None), POLICY, ["t1: all-party en (on-join)"]),
        # a transfer to an extension: it joins unannounced unless extensions hear prompts
        ([("caller", CA, "all-party")], ("t1", EXT), POLICY, []),
        (
            [("caller", CA, "all-party")],
            ("t1", EXT),
            TO_EXTENSIONS,
            ["t1: all-party en (on-join)"],
        ),
        # an extension of no office makes the call all-party: the outside caller hears it
        (
            [("caller", NY, "one-party"), ("callee", "301", None)],
            ("t1", EXT),
            POLICY,
            ["caller: all-party en (on-join)"],
        ),
        # ... unless its default office is one-party
        ([("caller", NY, "one-party"), ("callee", "301", None)], ("t1", EXT), NY_OFFICE, []),
    ],
)
def test_on_join(
    present: list[tuple[str, str | None, Mode | None]],
    new: tuple[str, str | None],
    policy: Policy,
    expected: list[str],
) -> None:
    parties = [Party(label, number, heard) for label, number, heard in present]
    assert said(announcements_on_join(parties, Party(*new), policy)) == expected
