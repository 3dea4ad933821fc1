"""Write docs/reliability.md from the tests themselves: every test marked
``@pytest.mark.fault(what, behaviour)`` becomes a row (fault or bad input, behaviour, test).

    python scripts/reliability_table.py          # rewrite the page
    python scripts/reliability_table.py --check  # exit 1 when the page is not what the tests say

The suite runs the check (tests/unit/test_reliability_doc.py), so the page cannot drift from
the tests that prove it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"

# Sections in the order a reader meets the system; a test file belongs to the first that
# names it.
SECTIONS = (
    ("Yahoo Finance", ("tests/integration/test_yahoo_replay.py",)),
    ("Bad prices and features", ("tests/integration/test_ingest.py", "tests/unit/test_properties.py")),
    ("Databases and object storage", ("tests/integration/test_faults.py",)),
    ("Processes killed", ("tests/e2e/test_kill.py",)),
    ("HTTP API", ("tests/integration/test_fuzz.py", "tests/integration/test_load.py")),
)

INTRO = """\
# Reliability: faults and bad input

Every fault and bad input the test suite injects, what stockcast does, and the test that
proves it. Faults are real where they can be: PostgreSQL is stopped with `pg_ctl`, S3 is cut
at the network (a proxy that refuses connections), SQLite is locked by another connection,
processes are killed with SIGKILL at named fail points (`STOCKCAST_FAILPOINTS`, see
`src/stockcast/failpoints.py`), and Yahoo's transport refuses connections through a proxy port.
Only Yahoo's answers are replayed (429, malformed, empty, partial), through yfinance's own code.

This page is generated from the tests' `@pytest.mark.fault(what, behaviour)` markers by
`python scripts/reliability_table.py`; `make test` fails when it is out of date.
`make soak` runs the fuzzing and load tests longer.
"""


@dataclass(frozen=True)
class Row:
    what: str
    behaviour: str
    test: str  # path::name


def _fault_marker(decorator: ast.expr) -> tuple[str, str] | None:
    if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.fault"):
        return None
    texts = [argument.value for argument in decorator.args if isinstance(argument, ast.Constant)]
    if len(texts) != 2 or not all(isinstance(text, str) and text.strip() for text in texts):
        raise ValueError(f"pytest.mark.fault needs two texts (what, behaviour): {ast.unparse(decorator)}")
    return texts[0], texts[1]


def rows_in(path: Path) -> list[Row]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            for decorator in node.decorator_list:
                marker = _fault_marker(decorator)
                if marker is not None:
                    found.append(Row(*marker, f"{path.relative_to(ROOT).as_posix()}::{node.name}"))
    return found


def collect() -> dict[str, list[Row]]:
    """Rows per section; a marked test in a file no section names is an error."""
    sections: dict[str, list[Row]] = {title: [] for title, _ in SECTIONS}
    owner = {file: title for title, files in SECTIONS for file in files}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        rows = rows_in(path)
        relative = path.relative_to(ROOT).as_posix()
        if rows and relative not in owner:
            raise ValueError(f"{relative} has fault tests: add it to a section in {Path(__file__).name}")
        if rows:
            sections[owner[relative]] += rows
    return sections


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    lines = [INTRO]
    for title, rows in collect().items():
        if not rows:
            continue
        lines += [f"## {title}", "", "| Fault or bad input | Behaviour | Test |", "| --- | --- | --- |"]
        lines += [f"| {_cell(row.what)} | {_cell(row.behaviour)} | `{row.test}` |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def main(arguments: list[str]) -> int:
    page = render()
    if "--check" in arguments:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/reliability_table.py")
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
