"""docs/phases.md's diagram is the call model's transition table (recorder.model.phases.ALLOWED)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.devtools.phases import BEGIN, DOC, END, diagram, main, with_diagram
from recorder.model.phases import ALLOWED


def test_the_doc_shows_the_table() -> None:
    assert with_diagram(DOC.read_text(encoding="utf-8"), diagram(ALLOWED)) == DOC.read_text(
        encoding="utf-8"
    ), "docs/phases.md differs from ALLOWED: run python -m recorder.devtools.phases"


def test_a_diagram_starts_where_nothing_leads_and_ends_where_nothing_goes() -> None:
    table = {"a": frozenset({"c", "b"}), "b": frozenset({"c"}), "c": frozenset(), "d": {"c"}}
    assert diagram(table).splitlines() == [
        "```mermaid", "stateDiagram-v2",
        "    [*] --> a", "    [*] --> d",
        "    a --> b", "    a --> c", "    b --> c", "    c --> [*]", "    d --> c",
        "```",
    ]


def test_check_fails_on_a_stale_doc_and_the_rewrite_mends_it(tmp_path: Path) -> None:
    doc = tmp_path / "phases.md"
    doc.write_text(f"# Phases\n\n{BEGIN}\nold diagram\n{END}\n\nprose\n", encoding="utf-8")
    assert main(["--check", "--doc", str(doc)]) == 1
    assert main(["--doc", str(doc)]) == 0
    assert main(["--check", "--doc", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert "old diagram" not in text and "    ending --> ended" in text
    assert text.startswith("# Phases\n\n") and text.endswith(f"{END}\n\nprose\n")


def test_a_doc_without_its_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="needs one line"):
        with_diagram(f"{END}\n{BEGIN}\n", "x")
