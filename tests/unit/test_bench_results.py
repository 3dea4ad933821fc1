"""`make bench`'s report: every figure with its same-run reference, ratio and goal; a missed
goal listed with its reason; the README's table replaced between its markers and nowhere else."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_all(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("run_all")
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results.md")
    monkeypatch.setattr(module, "README", tmp_path / "README.md")
    monkeypatch.setattr(module, "HISTORY", tmp_path / "history.json")
    yield module
    sys.modules.pop("run_all", None)
    sys.modules.pop("figures", None)


def test_results_state_each_figure_its_reference_and_whether_the_goal_was_met(run_all, tmp_path):
    from figures import Figure

    met = Figure("Serving", "throughput vs bare", "2,000 req/s", "3,000 req/s", 2 / 3, 0.5)
    missed = Figure("Training fan-out", "training speed-up, 2 Dask workers vs 1", "90 s", "140 s", 1.56, 1.7)
    (tmp_path / "history.json").write_text(
        json.dumps([{"change": "batched writes", "figure": "throughput vs bare", "before": "9 req/s"}])
    )
    text = run_all.write_results([met, missed], {"serving": "raw output"}, {"serving": 61.0})
    assert "| Serving | throughput vs bare | 2,000 req/s | 3,000 req/s | 0.67x | >= 0.5x | met |" in text
    assert "| 1.56x | >= 1.7x | **missed** |" in text
    missed_section = text.split("## Missed goals", 1)[1].split("##", 1)[0]
    assert "training speed-up, 2 Dask workers vs 1" in missed_section
    assert run_all.REASONS[missed.what] in missed_section  # the reason found by profiling
    assert "| batched writes | throughput vs bare | 9 req/s | 2,000 req/s (0.67x) |" in text
    assert "CPU" in text and "Python" in text and "numpy" in text and "raw output" in text
    assert (tmp_path / "results.md").read_text() == text


def test_the_readme_table_is_replaced_between_its_markers_only(run_all, tmp_path):
    from figures import Figure

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run_all.TABLE_START}\nold table\n{run_all.TABLE_END}\nafter\n")
    run_all.update_readme([Figure("Features", "rows/s", "3 M", "0.1 M", 30.0, 30.0)])
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n") and "old table" not in text
    assert "| Features | rows/s | 3 M | 0.1 M | 30.00x | >= 30x | met |" in text
