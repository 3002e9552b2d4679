"""Loading policy files: what a valid file means, and every error located as
"<file>:<line>: <rule name or key path>: <problem>", also through the CLI (exit 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from recorder.config import ConfigError, load_config
from recorder.policy import Numbering, PolicyError, load_policy
from recorder.policy.model import Policy
from recorder.policy.states import DEFAULT_ALL_PARTY_STATES
from tests.harness import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "policy.example.yaml"
ENV = {"VERBATIM_ARI_PASSWORD": "unused", "VERBATIM_DATABASE_DSN": "postgresql://unused"}


def load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path, Numbering(extension_pattern=r"^[0-9]{3}$"))


def test_no_file_means_the_built_in_policy() -> None:
    p = load_policy(None)
    assert (p.default_action, p.rules, p.do_not_record, p.path) == ("yes", (), (), None)
    assert p.jurisdiction.all_party_states == DEFAULT_ALL_PARTY_STATES
    assert (p.jurisdiction.default_mode, p.opt_out.dtmf) == ("all-party", "9")
    # the firm's own extensions hear no prompt unless the policy says so
    assert (p.announcements.to_extensions, p.jurisdiction.default_office) == (False, None)


def test_default_office_names_one_of_the_offices(tmp_path: Path) -> None:
    p = load(
        tmp_path,
        "jurisdiction:\n  default_office: New York\n  offices:\n"
        "    - {name: San Francisco, state: CA, extensions: [{regex: '^2'}]}\n"
        "    - {name: New York, state: NY, extensions: [{regex: '^3'}]}\n",
    )
    assert p.jurisdiction.default_office == "New York"


def test_example_file_loads_and_says_what_it_means() -> None:
    p = load_policy(EXAMPLE, Numbering())
    names = {r.name: r for r in p.rules}
    assert names["Office hours"].action == "yes" and names["Office hours"].at == "route"
    assert names["Litigation"].at == "department" and names["Litigation"].action == "force"
    assert names["Managing partner"].at == "extension"
    assert names["Forwarded to personal mobiles"].at == "transfer"
    assert (
        str(names["After hours"].match.times[0])
        == "mon,tue,wed,thu,fri 18:00-08:00 America/Los_Angeles"
    )
    assert str(names["After hours"].match.times[1]) == "sat,sun 00:00-24:00 America/Los_Angeles"
    assert p.opt_out.route_to == "verbatim-optout,s,1"
    assert p.jurisdiction.numbers["+12125550142"] == "CA"
    assert [d.name for d in p.do_not_record] == ["Superior Court clerk", "Privileged client line"]


def test_yaml_quirks_are_read_as_written(tmp_path: Path) -> None:
    p = load(
        tmp_path,
        "defaults:\n  action: no\nopt_out:\n  dtmf: 9\nannouncements:\n  to_extensions: yes\n"
        "rules:\n  - name: R\n    action: yes\n    match:\n"
        "      time: [{days: [mon, wed-fri], hours: 08:00-18:00}]\n"
        "  - {name: S, action: NEVER, match: {extension: '201', direction: outbound}}\n",
    )
    assert (p.default_action, p.opt_out.dtmf, p.announcements.to_extensions) == ("no", "9", True)
    assert p.rules[0].action == "yes" and p.rules[0].match.times[0].days == {0, 2, 3, 4}
    assert (p.rules[1].action, p.rules[1].at) == ("never", "extension")


def test_opt_out_can_be_switched_off(tmp_path: Path) -> None:
    assert load(tmp_path, "opt_out:\n  dtmf: null\n").opt_out.dtmf is None


# (file text, line, key, message fragment)
ERRORS = [
    (
        "rules:\n  - name: X\n    action: maybe\n",
        3,
        "rule 'X'.action",
        "must be one of force, yes, dontcare, no, never, got 'maybe'",
    ),
    (
        "rules:\n  - name: X\n    acton: yes\n",
        3,
        "rule 'X'.acton",
        "unknown key; did you mean 'action'?",
    ),
    ("rules:\n  - name: X\n", 2, "rule 'X'", "required key 'action' is missing"),
    ("rules:\n  - action: yes\n", 2, "rules[0]", "every rule needs a name"),
    (
        "rules:\n  - {name: X, action: yes}\n  - {name: X, action: no}\n",
        3,
        "rules[1].name",
        "rule name 'X' is used twice (first on line 2)",
    ),
    ("rulez: []\n", 1, "rulez", "unknown key; did you mean 'rules'?"),
    (
        "rules:\n  - name: X\n    action: no\n    match:\n      callr: ['+1']\n",
        5,
        "rule 'X'.match.callr",
        "unknown key; did you mean 'caller'?",
    ),
    (
        "rules:\n  - name: X\n    action: no\n    match: {direction: inbund}\n",
        4,
        "rule 'X'.match.direction",
        "did you mean 'inbound'?",
    ),
    (
        "rules:\n  - name: Night\n    action: no\n    match:\n      time:\n"
        "        - {days: mon-fri, hours: '25:00-06:00'}\n",
        6,
        "rule 'Night'.match.time[0].hours",
        "'25:00' is not a time HH:MM",
    ),
    (
        "rules:\n  - name: Night\n    action: no\n    match:\n      time:\n"
        "        - {days: mon-fri, hours: '22-6'}\n",
        6,
        "rule 'Night'.match.time[0].hours",
        "'22' is not a time HH:MM",
    ),
    (
        "rules:\n  - name: Night\n    action: no\n    match:\n      time:\n"
        "        - {days: mon-fri, hours: '08:00-08:00'}\n",
        6,
        "rule 'Night'.match.time[0].hours",
        "is empty; write 00:00-24:00 for a whole day",
    ),
    (
        "rules:\n  - name: Night\n    action: no\n    match:\n      time:\n"
        "        - days: mon-fry\n          hours: '22:00-06:00'\n",
        6,
        "rule 'Night'.match.time[0].days",
        "'mon-fry' is not a day list",
    ),
    (
        "rules:\n  - name: Night\n    action: no\n    match:\n      time:\n"
        "        - {days: sat, hours: '00:00-24:00', zone: America/Frisco}\n",
        6,
        "rule 'Night'.match.time[0].zone",
        "unknown time zone 'America/Frisco'",
    ),
    (
        "rules:\n  - name: Night\n    action: no\n    match:\n      time:\n        - {days: sat}\n",
        6,
        "rule 'Night'.match.time[0].hours",
        "required key is missing",
    ),
    (
        "rules:\n  - name: X\n    action: no\n    match: {caller: [{regex: '(+'}]}\n",
        4,
        "rule 'X'.match.caller[0].regex",
        "is not a valid regular expression",
    ),
    (
        "rules:\n  - name: X\n    action: no\n    match: {caller: ['415555']}\n",
        4,
        "rule 'X'.match.caller[0]",
        "expected an E.164 number or prefix such as +1212",
    ),
    (
        "rules:\n  - name: X\n    action: no\n    at: route\n    match: {target: ['+1']}\n",
        4,
        "rule 'X'.at",
        "match.target and match.via apply only at transfer",
    ),
    (
        "jurisdiction:\n  all_party_states: [CA, XX]\n",
        2,
        "jurisdiction.all_party_states[1]",
        "unknown state code 'XX'",
    ),
    (
        "jurisdiction:\n  all_party_states: [ca]\n",
        2,
        "jurisdiction.all_party_states[0]",
        "did you mean 'CA'?",
    ),
    (
        "jurisdiction:\n  numbers:\n    '+1212555': California\n",
        3,
        "jurisdiction.numbers.+1212555",
        "write 'CA'",
    ),
    (
        "jurisdiction:\n  extensions:\n    '+1415': CA\n",
        3,
        "jurisdiction.extensions.+1415",
        "is not an extension",
    ),
    (
        "jurisdiction:\n  offices:\n    - {name: SF, extensions: ['201']}\n",
        3,
        "office 'SF'.state",
        "required key is missing",
    ),
    (
        "jurisdiction:\n  offices:\n    - {name: SF, state: CA, extensions: ['201']}\n"
        "  default_office: Sf\n",
        4,
        "jurisdiction.default_office",
        "no office named 'Sf' (offices: 'SF'); did you mean 'SF'?",
    ),
    (
        "jurisdiction:\n  default_office: New York\n",
        2,
        "jurisdiction.default_office",
        "no office named 'New York' (offices: none: add jurisdiction.offices)",
    ),
    (
        "jurisdiction:\n  default_mode: two-party\n",
        2,
        "jurisdiction.default_mode",
        "must be one of all-party, one-party",
    ),
    (
        "jurisdiction:\n  regions: {US: one-party}\n",
        2,
        "jurisdiction.regions.US",
        "is not a phone region other than US",
    ),
    ("defaults:\n  action: force\n", 2, "defaults.action", "must be one of yes, no"),
    ("opt_out:\n  dtmf: '99'\n", 2, "opt_out.dtmf", "expected one DTMF key"),
    ("opt_out:\n  then: route\n", 2, "opt_out.then", "route needs opt_out.route_to"),
    (
        "opt_out:\n  route_to: 'just-a-context'\n",
        2,
        "opt_out.route_to",
        "expected context,extension,priority",
    ),
    (
        "do_not_record:\n  - {name: Court}\n",
        2,
        "do_not_record 'Court'.numbers",
        "list at least one number or prefix",
    ),
    (
        "announcements:\n  languages: {'+52': Spanish}\n",
        2,
        "announcements.languages.+52",
        "expected a language code",
    ),
    ("rules:\n  - name: X\n    action: [yes]\n", 3, "rule 'X'.action", "got a list"),
    # a name goes into the reason the dialplan is told: a control character in it made the
    # hook's answer fail (ERROR), and the fallback recorded a call policy said not to
    ('rules:\n  - name: "Legal\\tline"\n    action: never\n', 2, "rules[0].name",
     "must not contain control characters"),
    ('do_not_record:\n  - {name: "CEO\\x7f", numbers: ["+12125550100"]}\n', 2,
     "do_not_record[0].name", "must not contain control characters"),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), ERRORS, ids=[e[2] for e in ERRORS])
def test_errors_name_file_line_and_rule(
    tmp_path: Path, text: str, line: int, key: str, fragment: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'policy.yaml'}:{line}: {key}: "), message
    assert fragment in message


def test_yaml_syntax_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"policy\.yaml:2: invalid YAML"):
        load(tmp_path, "rules:\n\tname: x\n")  # a tab
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_aliases_may_share_a_block_but_not_multiply_it(tmp_path: Path) -> None:
    numbers = ", ".join(f'"+1213555{n:04d}"' for n in range(100))
    shared = (f"do_not_record:\n  - &court\n    name: Court\n    numbers: &nums [{numbers}]\n"
              "  - name: Court annex\n    numbers: *nums\n")
    assert len(load(tmp_path, shared).do_not_record) == 2  # a block shared is read as written
    # one entry of 100 numbers referenced 3,000 times: each copy's numbers parsed again
    bomb = shared + "".join("  - *court\n" for _ in range(3000))
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, bomb)
    assert str(caught.value) == (
        f"{tmp_path / 'policy.yaml'}: holds 315,213 values once its aliases (*name) are "
        "expanded, more than the 200,000 a file may: an alias may repeat a block, not multiply it")
    with pytest.raises(PolicyError, match=r"policy\.yaml:3: an alias \(\*name\) is used inside "
                       "the block it names"):
        load(tmp_path, 'do_not_record:\n  - name: a\n    numbers: &x ["+12135550150", *x]\n')


def test_blocks_nested_too_deeply_are_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, "rules: " + "[" * 3000 + "]" * 3000 + "\n")
    assert str(caught.value) == (
        f"{tmp_path / 'policy.yaml'}: invalid YAML: blocks nested too deeply")


def test_config_policy_file_key(tmp_path: Path) -> None:
    base = 'ari:\n  username: "v"\nstorage:\n  archive_dir: "/srv/a"\n'
    conf = tmp_path / "v.yaml"
    conf.write_text(base, encoding="utf-8")
    assert load_config(conf, ENV).calls.policy_file is None
    conf.write_text(base + 'calls:\n  policy_file: "/etc/verbatim/policy.yaml"\n', encoding="utf-8")
    assert load_config(conf, ENV).calls.policy_file == Path("/etc/verbatim/policy.yaml")
    conf.write_text(base + 'calls:\n  policy_file: "policy.yaml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"v\.yaml:6: calls\.policy_file: must be an absolute"):
        load_config(conf, ENV)


def verbatim(*args: str) -> subprocess.CompletedProcess[str]:
    return cli.verbatim(*args, env=ENV)


def test_cli_check_config_and_explain_exit_2_on_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("rules:\n  - name: After hours\n    action: sometimes\n", encoding="utf-8")
    conf = tmp_path / "v.yaml"
    conf.write_text(
        f'ari:\n  username: "v"\nstorage:\n  archive_dir: "/srv/a"\n'
        f'calls:\n  policy_file: "{bad}"\n',
        encoding="utf-8",
    )
    expected = f"{bad}:3: rule 'After hours'.action: must be one of"
    result = verbatim("check-config", str(conf))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    result = verbatim("explain", "-c", str(conf), "--from", "+14155550100", "--to", "201")
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    result = verbatim("explain", "--policy", str(bad), "--from", "+14155550100", "--to", "201")
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_cli_check_config_reports_the_policy(tmp_path: Path) -> None:
    conf = tmp_path / "v.yaml"
    conf.write_text(
        f'ari:\n  username: "v"\nstorage:\n  archive_dir: "/srv/a"\n'
        f'calls:\n  policy_file: "{EXAMPLE}"\n',
        encoding="utf-8",
    )
    result = verbatim("check-config", str(conf))
    assert result.returncode == 0, result.stderr
    assert f"policy {EXAMPLE}, 9 rules" in result.stdout
