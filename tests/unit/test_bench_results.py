"""`make bench`'s report: every figure with its same-run reference, ratio and goal; a missed
goal listed with its reason; a part run keeps the other parts; a benchmark that fails leaves
every page as it was; the README's table replaced between its markers and nowhere else."""

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
    for name, file in (("RESULTS", "results.md"), ("RAW", "results.json"), ("README", "README.md")):
        monkeypatch.setattr(module, name, tmp_path / file)
    monkeypatch.setattr(module, "HISTORY", tmp_path / "history.json")
    yield module
    sys.modules.pop("run_all", None)
    sys.modules.pop("figures", None)


def part(*figures, date="2026-11-26 01:00 UTC", commit="abc1234") -> dict:
    from dataclasses import asdict

    return {
        "figures": [asdict(figure) for figure in figures],
        "output": "raw output",
        "seconds": 61.0,
        "machine": [("date", date), ("commit", commit), ("CPU", "test CPU, 2 cores")],
        "versions": "numpy 2",
    }


def test_results_state_each_figure_its_reference_and_whether_the_goal_was_met(run_all, tmp_path):
    from figures import Figure

    met = Figure("Serving", "throughput vs bare", "2,000 req/s", "3,000 req/s", 2 / 3, 0.5)
    missed = Figure("Training fan-out", "training speed-up, 2 Dask workers vs 1", "90 s", "140 s", 1.56, 1.7)
    (tmp_path / "history.json").write_text(
        json.dumps(
            [
                {"change": "batched writes", "figure": "throughput vs bare", "before": "9 req/s"},
                {"change": "cadence", "figure": "an older setup", "before": "1,049 s", "after": "60 s"},
            ]
        )
    )
    text = run_all.write_results({"serving": part(met), "scale": part(missed)})
    assert "| Serving | throughput vs bare | 2,000 req/s | 3,000 req/s | 0.67x | >= 0.5x | met |" in text
    assert "| 1.56x | >= 1.7x | **missed** |" in text
    missed_section = text.split("## Missed goals", 1)[1].split("##", 1)[0]
    assert "training speed-up, 2 Dask workers vs 1" in missed_section
    assert run_all.REASONS[missed.what] in missed_section  # the reason found by profiling
    assert "| batched writes | throughput vs bare | 9 req/s | 2,000 req/s (0.67x, this run) |" in text
    assert "| 60 s (recorded when the change was made, not this run) |" in text


def test_every_recorded_reason_and_history_row_names_a_figure_a_benchmark_produces(run_all):
    sources = "".join(path.read_text() for path in BENCHMARKS.glob("bench_*.py"))
    for what in run_all.REASONS:
        assert f'"{what}"' in sources, what
    for entry in json.loads((BENCHMARKS / "history.json").read_text()):
        if "after" not in entry:  # its after is this run's figure: the label must be one
            assert f'"{entry["figure"]}"' in sources, entry["figure"]


def fake_benchmarks(run_all, monkeypatch, tmp_path, scripts: dict[str, str]) -> None:
    """Benchmarks that are small scripts appending their figures as bench_*.py do."""
    for name, body in scripts.items():
        (tmp_path / f"{name}.py").write_text(
            "import json, sys\npath = sys.argv[sys.argv.index('--json') + 1]\n" + body
        )
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "BENCHMARKS", {name: [f"{name}.py"] for name in scripts})


def emits(area: str, what: str, ratio: float) -> str:
    figure = {"area": area, "what": what, "measured": "1", "reference": "2", "ratio": ratio, "goal": 1.0}
    return f"open(path, 'a').write(json.dumps({figure!r}) + '\\n')\nprint('measured')\n"


def main(run_all, monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["run_all.py", *args])
    return int(run_all.main())


def test_a_part_run_replaces_its_own_figures_and_keeps_the_others(run_all, monkeypatch, tmp_path):
    fake_benchmarks(
        run_all,
        monkeypatch,
        tmp_path,
        {"features": emits("Features", "rows/s", 2.0), "serving": emits("Serving", "p99", 0.5)},
    )
    assert main(run_all, monkeypatch, "--no-readme") == 0
    fake_benchmarks(run_all, monkeypatch, tmp_path, {"features": "", "serving": emits("Serving", "p99", 3.0)})
    assert main(run_all, monkeypatch, "--only", "serving", "--no-readme") == 0
    text = run_all.RESULTS.read_text()
    assert "| Features | rows/s | 1 | 2 | 2.00x | >= 1x | met |" in text  # kept from the first run
    assert "| Serving | p99 | 1 | 2 | 3.00x | >= 1x | met |" in text and "0.50x" not in text
    assert list(json.loads(run_all.RAW.read_text())["parts"]) == ["features", "serving"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("sys.exit(3)", "exited 3"),
        ("print('skipped: no data')", "skipped: no data"),
        ("print('ran, measured nothing')", "no figures"),
    ],
)
def test_a_benchmark_that_measures_nothing_leaves_every_page_as_it_was(
    run_all, monkeypatch, tmp_path, capsys, body, why
):
    fake_benchmarks(run_all, monkeypatch, tmp_path, {"features": emits("Features", "rows/s", 2.0)})
    assert main(run_all, monkeypatch, "--no-readme") == 0
    before = run_all.RAW.read_text(), run_all.RESULTS.read_text()
    fake_benchmarks(run_all, monkeypatch, tmp_path, {"features": body})
    assert main(run_all, monkeypatch, "--no-readme") == 1
    assert (run_all.RAW.read_text(), run_all.RESULTS.read_text()) == before
    error = capsys.readouterr().err
    assert "features was not measured" in error and why in error


def test_the_readme_table_is_replaced_between_its_markers_only(run_all, tmp_path):
    from figures import Figure

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run_all.TABLE_START}\nold table\n{run_all.TABLE_END}\nafter\n")
    run_all.update_readme([Figure("Features", "rows/s", "3 M", "0.1 M", 30.0, 30.0)])
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n") and "old table" not in text
    assert "| Features | rows/s | 3 M | 0.1 M | 30.00x | >= 30x | met |" in text


def test_a_readme_without_its_markers_is_refused_before_anything_is_measured(run_all, monkeypatch, tmp_path):
    fake_benchmarks(run_all, monkeypatch, tmp_path, {"features": "raise SystemExit('must not run')"})
    run_all.README.write_text(f"intro\n{run_all.TABLE_START}\nno end marker\n")
    with pytest.raises(SystemExit) as stop:
        main(run_all, monkeypatch)
    assert stop.value.code == 2 and not run_all.RAW.exists()
