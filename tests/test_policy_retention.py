"""The policy file's retention section: lengths, classes, and every mistake located as
"<file>:<line>: <key>: <problem>"."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.config._reader import Invalid
from recorder.policy import Numbering, PolicyError, load_policy
from recorder.policy.model import Length, RetentionClass
from recorder.policy.retention import length

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "policy.example.yaml"

LENGTHS = [
    ("90d", Length(days=90)),
    ("12w", Length(days=84)),
    ("7y", Length(years=7)),
    ("0d", Length()),
    ("2 y", Length(years=2)),
    ("forever", None),
    ("Forever", None),
]


@pytest.mark.parametrize(("text", "expected"), LENGTHS)
def test_lengths(text: str, expected: Length | None) -> None:
    assert length(text) == expected


@pytest.mark.parametrize("text", ["7", "7m", "-1y", "1.5y", "y", "12345d", "ever"])
def test_bad_lengths(text: str) -> None:
    with pytest.raises(Invalid, match="expected a length such as 90d, 12w, 7y or forever"):
        length(text)


def test_length_as_sql_and_text() -> None:
    assert (Length(years=2, days=3).sql, str(Length(years=2, days=3))) == ("2 years 3 days",
                                                                          "2y 3d")  # fmt: skip
    assert str(Length()) == "0d"


def test_example_file_classes() -> None:
    p = load_policy(EXAMPLE, Numbering())
    classes = p.retention_policy.classes
    assert classes["standard"] == RetentionClass("standard", Length(years=2), None,
                                                 classes["standard"].line)  # fmt: skip
    assert (classes["privileged-metadata"].audio, classes["privileged-metadata"].metadata) == (
        Length(), Length(years=7))
    assert p.retention_policy.release_needs_two is True


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path, Numbering())


def test_no_section_no_classes(tmp_path: Path) -> None:
    p = load_policy(None)
    assert dict(p.retention_policy.classes) == {} and not p.retention_policy.release_needs_two
    # Without classes, rules may name any class: they are labels then.
    load(tmp_path, "rules:\n  - {name: R, action: yes, retention: anything}\n")


ERRORS = [
    ("retention:\n  classes:\n    standard: 7\n", 3, "retention.classes.standard",
     "expected a length such as 90d, 12w, 7y or forever, got '7'"),
    ("retention:\n  classes:\n    standard: [2y]\n", 3, "retention.classes.standard",
     "expected a length (7y) or {audio: ..., metadata: ...}"),
    ("retention:\n  classes:\n    p:\n      metadata: 7y\n", 3, "retention.classes.p.audio",
     "required key is missing"),
    ("retention:\n  classes:\n    p: {audio: 2y, metadata: 1y}\n", 3,
     "retention.classes.p.metadata", "must be at least as long as audio"),
    ("retention:\n  classes:\n    p: {audio: forever, metadata: 10y}\n", 3,
     "retention.classes.p.metadata", "must be at least as long as audio"),
    ("retention:\n  classes:\n    p: {audio: 1y, metadta: 1y}\n", 3,
     "retention.classes.p.metadta", "unknown key; did you mean 'metadata'?"),
    ("retention:\n  clases: {}\n", 2, "retention.clases", "unknown key"),
    ("retention:\n  release_needs_two: maybe\n", 2, "retention.release_needs_two",
     "expected true or false"),
    ("retention:\n  classes:\n    'bad name': 1y\n", 3, "retention.classes.bad name",
     "a class name is letters"),
    ("defaults:\n  retention: std\nretention:\n  classes:\n    standard: 1y\n", 2,
     "defaults.retention", "retention class 'std' is not in retention.classes (standard)"),
    ("retention:\n  classes:\n    standard: 1y\nrules:\n  - name: R\n    action: yes\n"
     "    retention: client\n", 5, "rule 'R'.retention", "retention class 'client' is not in"),
    ("retention:\n  classes:\n    standard: 1y\ndo_not_record:\n  - name: D\n"
     "    numbers: ['+1415']\n    retention: priv\n", 5, "do_not_record 'D'.retention",
     "retention class 'priv' is not in"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "key", "message"), ERRORS)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    with pytest.raises(PolicyError) as err:
        load(tmp_path, text)
    assert (err.value.file, err.value.line, err.value.key) == (
        str(tmp_path / "policy.yaml"), line, key)
    assert message in err.value.message
