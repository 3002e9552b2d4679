"""Who hears which prompt: at the start, on answer, and when a party joins."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import pytest

from recorder.policy import Party, Policy, announcements_at_start, announcements_on_join
from recorder.policy.model import Announcements, Mode, OptOut

POLICY = Policy()
CA, NY, TX, WITHHELD, EXT = "+14155550100", "+12125550100", "+17135550100", None, "201"


def said(anns: Sequence[object]) -> list[str]:
    return [str(a) for a in anns]


@pytest.mark.parametrize(
    ("caller", "callee", "expected"),
    [
        (NY, TX, ["caller: one-party en (before-bridge)"]),
        (NY, CA, ["caller: all-party en (before-bridge)", "callee: all-party en (on-answer)"]),
        (CA, TX, ["caller: all-party en (before-bridge)", "callee: all-party en (on-answer)"]),
        (
            WITHHELD,
            TX,
            ["caller: all-party en (before-bridge)", "callee: all-party en (on-answer)"],
        ),
        # 201 is an extension of no office: the all-party default.
        (EXT, NY, ["caller: all-party en (before-bridge)", "callee: all-party en (on-answer)"]),
    ],
)
def test_at_start(caller: str | None, callee: str, expected: list[str]) -> None:
    assert (
        said(announcements_at_start(Party("caller", caller), Party("callee", callee), POLICY))
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


def test_extensions_can_be_spared() -> None:
    spare = Policy(announcements=Announcements(to_extensions=False))
    out = announcements_at_start(Party("caller", EXT), Party("callee", CA), spare)
    assert said(out) == ["callee: all-party en (on-answer)"]
    out = announcements_at_start(Party("caller", NY), Party("callee", EXT), spare)
    assert said(out) == ["caller: all-party en (before-bridge)"]


@pytest.mark.parametrize(
    ("present", "new", "expected"),
    [
        # one-party call, one-party newcomer: nothing
        ([("caller", NY, "one-party")], ("t1", TX), []),
        # the strictest rule becomes all-party: everyone present hears it
        (
            [("caller", NY, "one-party"), ("callee", TX, None)],
            ("t1", CA),
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
            ["t1: all-party en (on-join)"],
        ),
        ([("caller", CA, "all-party")], ("t1", None), ["t1: all-party en (on-join)"]),
    ],
)
def test_on_join(
    present: list[tuple[str, str | None, Mode | None]],
    new: tuple[str, str | None],
    expected: list[str],
) -> None:
    parties = [Party(label, number, heard) for label, number, heard in present]
    assert said(announcements_on_join(parties, Party(*new), POLICY)) == expected
