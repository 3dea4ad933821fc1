"""docs/reliability.md is what the fault tests say, row for row."""

from __future__ import annotations

import importlib.util
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
