"""Write docs/reliability.md from the tests themselves: every test marked
``@pytest.mark.fault(what, behaviour)`` becomes a row (fault or bad input, behaviour, test),
once that test has run and passed.

    python scripts/reliability_table.py          # rewrite the page
    python scripts/reliability_table.py --check  # exit 1 when the page is not what the tests say

A marker alone proves nothing: tests/fault_record.py (a pytest plugin the suite loads) writes
how each fault test ended, with a digest of the test's code, to docs/reliability-evidence.json.
The page is refused while any marked test has no passing run of its current code (never run,
failed, skipped, or edited since). The suite runs the check (tests/unit/test_reliability_doc.py),
so the page cannot drift from the tests that prove it.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"
EVIDENCE = ROOT / "docs" / "reliability-evidence.json"

# Sections in the order a reader meets the system; a test file belongs to the first that
# names it.
SECTIONS = (
    ("Yahoo Finance", ("tests/integration/test_yahoo_replay.py",)),
    ("Bad prices and features", ("tests/integration/test_ingest.py", "tests/unit/test_properties.py")),
    ("Databases and object storage", ("tests/integration/test_faults.py",)),
    (
        "Processes killed",
        ("tests/e2e/test_kill.py", "tests/e2e/test_training_lease.py", "tests/e2e/test_training_jobs.py"),
    ),
    ("HTTP API", ("tests/integration/test_fuzz.py", "tests/integration/test_load.py")),
)

INTRO = """\
# Reliability: faults and bad input

Every fault and bad input the test suite injects, what stockcast does, and the test that
proves it. Faults are real where they can be: PostgreSQL is stopped with `pg_ctl`, S3 is cut
at the network (a proxy that refuses connections), SQLite is locked by another connection,
processes are killed with SIGKILL (or frozen with SIGSTOP) at named fail points
(`STOCKCAST_FAILPOINTS`, see `src/stockcast/failpoints.py`), and Yahoo's transport refuses
connections through a proxy port.
Only Yahoo's answers are replayed (429, malformed, empty, partial), through yfinance's own code.

This page is generated from the tests' `@pytest.mark.fault(what, behaviour)` markers by
`python scripts/reliability_table.py`, and only from tests that ran and passed: the suite
records each fault test's outcome and a digest of its code in `docs/reliability-evidence.json`,
and the generator refuses a fault whose test has no passing run of its current code.
`make test` fails when the page is out of date. `make soak` runs the fuzzing and load tests
longer.
"""


@dataclass(frozen=True)
class Row:
    what: str
    behaviour: str
    test: str  # path::name
    code: str = ""  # digest of the test function's code (code_digest)


def code_digest(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """A test function's code without its decorators, as the parser sees it: layout, comments
    and the marker's texts do not change it; anything the test does does."""
    bare = copy.copy(node)
    bare.decorator_list = []
    return hashlib.sha256(ast.unparse(bare).encode()).hexdigest()[:16]


def function_digest(path: Path, name: str) -> str | None:
    """``code_digest`` of the module-level test function ``name`` in ``path``."""
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return code_digest(node)
    return None


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
                    test = f"{path.relative_to(ROOT).as_posix()}::{node.name}"
                    found.append(Row(*marker, test, code_digest(node)))
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


def load_evidence(path: Path | None = None) -> dict[str, dict[str, str]]:
    """What tests/fault_record.py wrote: per test, its last outcome and the code that ran."""
    path = path or EVIDENCE
    return json.loads(path.read_text()) if path.exists() else {}


def unproven(rows: list[Row], evidence: dict[str, dict[str, str]]) -> list[str]:
    """Why each row's test does not (yet) prove it: no run recorded, a run that did not pass,
    or a pass of code that has changed since."""
    problems = []
    for row in rows:
        record = evidence.get(row.test)
        if record is None:
            problems.append(f"{row.test}: never recorded a run")
        elif record.get("outcome") != "passed":
            problems.append(f"{row.test}: last run {record.get('outcome')}")
        elif record.get("code") != row.code:
            problems.append(f"{row.test}: changed since it last passed")
    return problems


def proven() -> dict[str, list[Row]]:
    """``collect``'s rows, refused unless every one's test passed as its code is now."""
    sections = collect()
    problems = unproven([row for rows in sections.values() for row in rows], load_evidence())
    if problems:
        tests = " ".join(sorted({problem.split(": ", 1)[0] for problem in problems}))
        raise ValueError(
            "fault tests without a passing run of their current code:\n  "
            + "\n  ".join(problems)
            + f"\nrun them (the suite records their outcomes): python -m pytest {tests}"
        )
    return sections


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    lines = [INTRO]
    for title, rows in proven().items():
        if not rows:
            continue
        lines += [f"## {title}", "", "| Fault or bad input | Behaviour | Test |", "| --- | --- | --- |"]
        lines += [f"| {_cell(row.what)} | {_cell(row.behaviour)} | `{row.test}` |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def main(arguments: list[str]) -> int:
    try:
        page = render()
    except ValueError as error:
        print(f"{PAGE.relative_to(ROOT)} not written: {error}")
        return 1
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
