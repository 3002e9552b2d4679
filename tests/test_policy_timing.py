"""The time before the parties can talk: the caller's prompt, the ring, the callee's prompt."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import pytest

from recorder.policy import Party, Policy, announcements_at_start
from recorder.policy.model import Announcements
from recorder.policy.prompts import DEFAULT_DIRECTORY, prompt_lengths, read_manifest
from recorder.policy.timing import Wait, time_to_talk
from tests.harness.cli import explain_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "policy.example.yaml"
LENGTHS = {"consent-all-party-en": 6.5, "consent-one-party-en": 4.25, "consent-all-party-es": 7.0}
BUILT_IN = Policy()
TO_EXTENSIONS = Policy(announcements=Announcements(to_extensions=True))
SPANISH = Policy(announcements=Announcements(languages=MappingProxyType({"+52": "es"})))
NY, TX, CA, MX = "+12125550100", "+17135550100", "+14155550100", "+525512345678"
CALLER_ALL = ("caller's prompt consent-all-party-en", 6.5)
CALLEE_ALL = ("callee's prompt consent-all-party-en", 6.5)


@pytest.mark.parametrize(
    ("caller", "callee", "policy", "recording", "ring", "seconds", "parts", "unknown"),
    [
        # one-party: only the caller's prompt, then the ring
        (NY, TX, BUILT_IN, True, 2.0, 6.25,
         [("caller's prompt consent-one-party-en", 4.25), ("ring", 2.0)], []),
        # all-party between outside parties: the callee's prompt after it answers
        (NY, CA, BUILT_IN, True, 2.0, 15.0, [CALLER_ALL, ("ring", 2.0), CALLEE_ALL], []),
        # the firm's extension (no office: all-party) hears none by default...
        (NY, "200", BUILT_IN, True, 2.0, 8.5, [CALLER_ALL, ("ring", 2.0)], []),
        # ... unless the policy announces to extensions
        (NY, "200", TO_EXTENSIONS, True, 2.0, 15.0, [CALLER_ALL, ("ring", 2.0), CALLEE_ALL], []),
        # an outbound call from an extension: the outside party's prompt only
        ("200", CA, BUILT_IN, True, 5.0, 11.5, [("ring", 5.0), CALLEE_ALL], []),
        # the caller's language
        (MX, CA, SPANISH, True, 0.0, 13.5,
         [("caller's prompt consent-all-party-es", 7.0), ("ring", 0.0), CALLEE_ALL], []),
        # not recorded: nothing announced, the ring only
        (NY, CA, BUILT_IN, False, 3.0, 3.0, [("ring", 3.0)], []),
        # a prompt the manifest lacks is named, not counted
        (MX, TX, SPANISH, True, 1.0, 7.5, [("ring", 1.0), CALLEE_ALL], ["consent-all-party-es"]),
    ],
)  # fmt: skip
def test_time_to_talk(
    caller: str, callee: str, policy: Policy, recording: bool, ring: float, seconds: float,
    parts: list[tuple[str, float]], unknown: list[str],
) -> None:  # fmt: skip
    due = announcements_at_start(
        Party("caller", caller), Party("callee", callee), policy, recording=recording
    )
    lengths = {k: v for k, v in LENGTHS.items() if not (unknown and k in unknown)}
    wait = time_to_talk(due, ring, lengths)
    assert wait == Wait(seconds, tuple(parts), tuple(unknown))


def test_wait_in_words_and_json() -> None:
    wait = Wait(8.5, (CALLER_ALL, ("ring", 2.0)))
    assert str(wait) == "8.5 s (caller's prompt consent-all-party-en 6.5 s + ring 2.0 s)"
    unknown = Wait(2.0, (("ring", 2.0),), ("consent-all-party-fr",))
    assert str(unknown) == "2.0 s (ring 2.0 s; length unknown, not counted: consent-all-party-fr)"
    assert unknown.json() == {
        "seconds": 2.0,
        "parts": [{"what": "ring", "seconds": 2.0}],
        "unknown": ["consent-all-party-fr"],
    }


def test_explain_prints_the_time_before_the_parties_can_talk() -> None:
    """With the shipped prompts: a New York caller to the New York office (one-party), whose
    extension hears no prompt."""
    one_party = prompt_lengths(read_manifest(DEFAULT_DIRECTORY))["consent-one-party-en"]
    call = ("--policy", str(EXAMPLE), "--from", "+12125550100", "--to", "301",
            "--at", "2026-11-25T10:00")
    result = explain_cli(*call, "--ring-time", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["time_before_talk"] == {
        "seconds": round(one_party + 2.0, 3),
        "parts": [
            {"what": "caller's prompt consent-one-party-en", "seconds": one_party},
            {"what": "ring", "seconds": 2.0},
        ],
        "unknown": [],
    }
    text = explain_cli(*call).stdout  # ring time 0 unless given
    line = f"Time before the parties can talk  {one_party:.1f} s (caller's prompt "
    assert line + f"consent-one-party-en {one_party:.1f} s + ring 0.0 s)\n" in text
    result = explain_cli(*call, "--ring-time", "-1")
    assert result.returncode == 2 and "--ring-time: expected seconds from 0 to 3600" in (
        result.stderr
    )
