"""`explain` as a reader sees it: the text, the JSON, warnings, and the command's usage."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from recorder.policy import CallFacts, Join, Policy, explain, load_policy
from recorder.policy.explain import render, to_json
from recorder.policy.model import Announcements, OptOut
from tests.harness.cli import ROOT, explain_cli

EXAMPLE = ROOT / "config" / "policy.example.yaml"
AT = datetime.fromisoformat("2026-11-25T10:30:00-08:00")
OFFICE = EXAMPLE.read_text(encoding="utf-8").splitlines().index("  - name: Office hours") + 1
FACTS = CallFacts("inbound", "+14155550100", "201", joins=(Join("+12125550100"),))


def test_text_names_decision_rules_parties_and_announcements() -> None:
    text = render(explain(FACTS, load_policy(EXAMPLE), AT))
    for line in (
        "At         2026-11-25T10:30:00-08:00 (Wed)",
        f"Policy     {EXAMPLE}",
        "Decision   RECORD (yes): yes by rule 'Office hours' at route",
        "Decided by rule 'Office hours'; retention class client-7y",
        f"route      inbound from +14155550100 to 201  rule 'Office hours' (line {OFFICE})  yes",
        "extension  extension 201                     -                               no rule",
        "caller  +14155550100  US-CA  all-party  geocoder: 'San Francisco, CA'",
        "callee  201           US-CA  all-party  extension: office 'San Francisco'",
        "caller  before-bridge  sound:verbatim/consent-all-party-en  opt-out key 9",
        "Transfer to +12125550100 (target1)",
        "target1  on-join  sound:verbatim/consent-all-party-en  opt-out key 9",
    ):
        assert line in text, line
    # No verbatim.yaml, so no departments: the path has no department point.
    assert "department " not in text


def test_json_is_complete_and_serialisable() -> None:
    out = json.loads(json.dumps(to_json(explain(FACTS, load_policy(EXAMPLE), AT))))
    assert out["at"] == "2026-11-25T10:30:00-08:00" and out["call"]["callee"] == "201"
    first, second = out["stages"]
    assert (first["stage"], first["record"], first["mode"]) == ("start", True, "all-party")
    assert first["decision"]["decided_by"] == ["rule 'Office hours'"]
    assert first["decision"]["steps"][0]["rule"] == "Office hours"
    assert first["parties"][0] | {"detail": None} == {
        "party": "caller",
        "subject": "+14155550100",
        "e164": "+14155550100",
        "internal": False,
        "region": "US",
        "state": "CA",
        "mode": "all-party",
        "source": "geocoder",
        "detail": None,
        "place": "US-CA",
    }
    assert [a["to"] for a in second["announcements"]] == ["target1"]
    assert second["announcements"][0]["media"] == "sound:verbatim/consent-all-party-en"


def test_warnings_for_missing_or_mismatched_prompts() -> None:
    languages = MappingProxyType({"+52": "es"})
    policy = Policy(opt_out=OptOut(dtmf="5"), announcements=Announcements(languages=languages))
    prompts = {"consent-all-party-en": "9"}
    e = explain(CallFacts("inbound", "+525512345678", "+14155550100"), policy, AT, prompts=prompts)
    assert e.warnings == (
        "prompt consent-all-party-es is not in the prompts manifest",
        "prompt consent-all-party-en announces opt-out key 9, the policy's is 5: "
        "rebuild the prompts (verbatim prompts build)",
    )
    assert explain(FACTS, Policy(), AT, prompts={"consent-all-party-en": "9"}).warnings == ()


def test_cli_infers_direction_reads_local_times_and_orders_joins() -> None:
    result = explain_cli(
        "--policy", str(EXAMPLE), "--from", "211", "--to", "914155550100",
        "--at", "2026-11-25T10:00", "--forward-to", "+12125550100",
        "--attended-transfer-to", "301", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["call"]["direction"] == "outbound"
    assert out["at"] == "2026-11-25T10:00:00-08:00"  # in the policy's time zone
    assert [s["stage"] for s in out["stages"]] == [
        "start",
        "forward to +12125550100 (target1)",
        "attended transfer to 301 (target2)",
    ]
    assert out["stages"][0]["parties"][1]["e164"] == "+14155550100"  # outside-line 9 stripped


def test_cli_usage_errors_exit_2() -> None:
    result = explain_cli("--from", "+14155550100", "--to", "201", "--at", "tomorrow")
    assert result.returncode == 2 and "--at: not an ISO time" in result.stderr
    result = explain_cli("--from", "+14155550100", "--to", "201", "--opt-out", "target1")
    assert result.returncode == 2 and "no party target1" in result.stderr
    result = explain_cli("--from", "+14155550100")
    assert result.returncode == 2 and "--to" in result.stderr
    result = explain_cli("--from", "+14155550100", "--to", "201", "--policy", "/nonexistent.yaml")
    assert result.returncode == 2 and "/nonexistent.yaml: cannot read" in result.stderr


def test_cli_text_with_built_in_policy_and_opt_out() -> None:
    result = explain_cli("--from", "+14155550100", "--to", "201", "--at", "2026-11-25T10:00:00Z",
                      "--opt-out", "caller")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Policy     built-in defaults" in result.stdout
    assert "DO NOT RECORD (yes): caller opted out: not recorded; the call goes on unrecorded" in (
        result.stdout
    )


def test_cli_refuses_an_opt_out_the_policy_does_not_offer(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("opt_out:\n  dtmf: null\n")
    result = explain_cli("--policy", str(policy), "--from", "+14155550100", "--to", "201",
                      "--opt-out", "caller")  # fmt: skip
    assert result.returncode == 2
    assert "--opt-out: this policy offers no opt-out (opt_out.dtmf is null)" in result.stderr


def test_cli_ring_group_answer_and_hang_up_during_the_announcement(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "announcements: {to_extensions: true}\n"
        "rules:\n  - {name: Desk 210, match: {extension: ['210']}, action: never}\n")
    result = explain_cli("--policy", str(policy), "--from", "+12125550100", "--to", "600",
                      "--answered-by", "210", "--at", "2026-11-25T10:00:00Z", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(s["stage"], s["record"]) for s in out["stages"]] == [
        ("start", True), ("answered by 210 (ring group 600)", False)]
    assert out["stages"][1]["decision"]["decided_by"] == ["rule 'Desk 210'"]
    result = explain_cli("--policy", str(policy), "--from", "+14155550100", "--to", "201",
                      "--hangup-during", "callee", "--at", "2026-11-25T10:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "The callee hangs up during its announcement: the call ends there" in result.stdout
