"""docs/phases.md's diagram, generated from the call model's transition table
(recorder.model.phases.ALLOWED), so the doc cannot drift from the code.

    python -m recorder.devtools.phases            # rewrite the diagram in docs/phases.md
    python -m recorder.devtools.phases --check    # exit 1 if the doc and the table disagree

Only the text between the two markers is generated; the prose around it is written by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, TypeVar

from recorder.model.phases import ALLOWED

DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "phases.md"
BEGIN: Final = "<!-- generated from ALLOWED by `python -m recorder.devtools.phases` -->"
END: Final = "<!-- end of generated diagram -->"
Phase = TypeVar("Phase", bound=str)  # the table's phases: strings or a StrEnum


def diagram(table: Mapping[Phase, Iterable[Phase]]) -> str:
    """A Mermaid state diagram of `table` (phase -> the phases it may change to). A call starts
    in a phase nothing leads to and is over in one that leads nowhere."""
    order = [str(p) for p in table]
    edges = {str(p): sorted((str(t) for t in to), key=order.index) for p, to in table.items()}
    reached = {t for to in edges.values() for t in to}
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f"    [*] --> {p}" for p in order if p not in reached]
    for p in order:
        lines += [f"    {p} --> {t}" for t in edges[p]]
        if not edges[p]:
            lines.append(f"    {p} --> [*]")
    return "\n".join([*lines, "```"])


def with_diagram(doc: str, generated: str) -> str:
    """`doc` with the text between its markers replaced by `generated`."""
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        raise ValueError(f"the doc needs one line {BEGIN!r} and, after it, one {END!r}")
    head, rest = doc.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recorder.devtools.phases", description=__doc__)
    p.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    p.add_argument("--doc", type=Path, default=DOC)
    args = p.parse_args(argv)
    doc = args.doc.read_text(encoding="utf-8")
    new = with_diagram(doc, diagram(ALLOWED))
    if new == doc:
        return 0
    if args.check:
        print(f"{args.doc}: the phase diagram differs from recorder.model.phases.ALLOWED; "
              "run python -m recorder.devtools.phases", file=sys.stderr)
        return 1
    args.doc.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
