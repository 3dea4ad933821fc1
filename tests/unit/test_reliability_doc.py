"""docs/reliability.md is what the fault tests say, row for row, and only what they proved:
a fault is listed once its test ran and passed with the code it has now."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "reliability_table", ROOT / "scripts" / "reliability_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_reliability_page_is_generated_from_the_fault_tests():
    script = load_script()
    page = (ROOT / "docs" / "reliability.md").read_text()
    assert page == script.render(), "run: python scripts/reliability_table.py"
    rows = [row for section in script.collect().values() for row in section]
    assert len({row.test for row in rows}) == len(rows) >= 20
    for needed in (
        "connection refused",
        "429",
        "empty frame",
        "malformed",
        "does not exist",
        "partial",
        "PostgreSQL stopped",
        "SQLite",
        "S3",
        "SIGKILL during ingestion",
        "SIGKILL during training",
        "corrupt",
    ):
        assert any(needed in row.what for row in rows), needed


def test_a_marker_without_both_texts_is_refused(tmp_path):
    script = load_script()
    broken = tmp_path / "test_broken.py"
    broken.write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.fault("only what")
        def test_x():
            pass
    """)
    )
    script.ROOT = tmp_path
    with pytest.raises(ValueError, match="two texts"):
        script.rows_in(broken)


FAULTY = """
import pytest


@pytest.mark.fault("a fault that is handled", "handled")
def test_holds():
    assert 1 + 1 == 2


@pytest.mark.fault("a fault that is not handled", "a promise")
@pytest.mark.parametrize("n", [1, 2])
def test_breaks(n):
    assert n == 1


@pytest.mark.fault("a fault needing a server", "untested here")
def test_skipped():
    pytest.skip("no server")


def test_unmarked():
    pass
"""


def run_recorded(project: Path, record: Path) -> None:
    """pytest with the suite's recording plugin over ``project``'s tests (its own rootdir)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.fault_record",
            "-q",
            "-c",
            str(project / "pytest.ini"),
            "--rootdir",
            str(project),
            str(project / "tests"),
        ],
        cwd=ROOT,
        env={**os.environ, "FAULT_RECORD_FILE": str(record), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        check=False,
        timeout=120,
    )


def test_only_faults_whose_tests_ran_and_passed_as_they_are_now_make_the_page(tmp_path):
    project, record = tmp_path / "project", tmp_path / "evidence.json"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    fault(what, behaviour): a fault\n")
    test_file = project / "tests" / "test_faulty.py"
    test_file.write_text(FAULTY)
    script = load_script()
    script.ROOT, script.EVIDENCE, script.PAGE = project, record, project / "reliability.md"
    script.SECTIONS = (("Faults", ("tests/test_faulty.py",)),)

    with pytest.raises(ValueError, match="test_holds: never recorded a run"):
        script.render()  # markers alone prove nothing

    run_recorded(project, record)
    recorded = json.loads(record.read_text())
    assert {key: entry["outcome"] for key, entry in recorded.items()} == {
        "tests/test_faulty.py::test_holds": "passed",
        "tests/test_faulty.py::test_breaks": "failed",  # one case of two failed
        "tests/test_faulty.py::test_skipped": "skipped",
    }
    with pytest.raises(ValueError) as refused:
        script.render()
    assert "tests/test_faulty.py::test_breaks: last run failed" in str(refused.value)
    assert "tests/test_faulty.py::test_skipped: last run skipped" in str(refused.value)
    assert "test_holds" not in str(refused.value)

    test_file.write_text(
        FAULTY.replace("assert n == 1", "assert n in (1, 2)").split('@pytest.mark.fault("a fault needing')[0]
    )
    run_recorded(project, record)
    page = script.render()
    assert "| a fault that is handled | handled | `tests/test_faulty.py::test_holds` |" in page
    assert "| a fault that is not handled | a promise | `tests/test_faulty.py::test_breaks` |" in page
    assert "needing a server" not in page

    # Layout and comments do not matter; what the test does does, until it passes again.
    test_file.write_text(test_file.read_text().replace("assert 1 + 1 == 2", "assert 1 + 1 == 2  # sums"))
    assert script.render() == page
    test_file.write_text(test_file.read_text().replace("assert 1 + 1 == 2", "assert 2 + 2 == 4"))
    with pytest.raises(ValueError, match="test_holds: changed since it last passed"):
        script.render()
    assert script.main(["--check"]) == 1
