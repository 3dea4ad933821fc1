"""`stockcast evaluate` and its gate audit from a file of bars: tables printed and written, the
README's own section replaced and nothing else (and nothing more on a rerun), a README without
the markers refused, bad arguments refused in a line that says why, with nothing written."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.e2e.test_daily_cycle import run_cli
from tests.series import autocorrelated_bars

README = """# x

<!-- forecast-quality:start -->
old table
<!-- forecast-quality:end -->

<!-- gate-audit-test:start -->
old audit
<!-- gate-audit-test:end -->
tail
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """MOM has momentum a model can learn; WALK is a random walk."""
    folder = tmp_path_factory.mktemp("evaluate")
    bars = pd.concat(
        [
            autocorrelated_bars(900, phi=0.5, seed=5).assign(ticker="MOM"),
            autocorrelated_bars(900, phi=0.0, seed=11).assign(ticker="WALK"),
        ]
    )
    path = folder / "bars.parquet"
    bars.drop(columns=["source"]).to_parquet(path, index=False)
    env = {
        "STOCKCAST_DATA_DIR": str(folder / "data"),
        "STOCKCAST_SOURCE": f"file:{path}",
        "STOCKCAST_TICKERS": "MOM,WALK",
        "STOCKCAST_START_DATE": "2010-01-01",
        "STOCKCAST_MODELS": "naive,drift,ridge,arima",
        "STOCKCAST_HORIZONS": "1,5,20",
        "STOCKCAST_BACKTEST_DAYS": "150",
        "STOCKCAST_MIN_TRAIN_DAYS": "200",
        "STOCKCAST_REFIT_EVERY_DAYS": "50",
        "STOCKCAST_RETRAIN_AFTER_DAYS": "50",
    }
    return folder, env


def test_the_candidate_table_has_scale_free_and_probabilistic_scores(setup):
    folder, env = setup
    readme = folder / "README.md"
    readme.write_text(README)
    result = run_cli("evaluate", "--readme", str(readme), "--per-ticker", str(folder / "rows.csv"), env=env)
    assert result.returncode == 0, result.stderr
    assert "RMSSE (median)" in result.stdout and "coverage 50 / 80 / 90%" in result.stdout
    rows = pd.read_csv(folder / "rows.csv")
    assert set(rows["ticker"]) == {"MOM", "WALK"}
    for column in ("rmsse", "msis_90", "coverage_50", "coverage_80", "coverage_90", "direction_p_value"):
        assert column in rows
    # Every horizon, each candidate on each ticker, scored on its own window of 150 origins.
    assert rows.groupby("horizon").size().to_dict() == {1: 8, 5: 8, 20: 8}
    assert (rows["n_forecasts"] == 150).all()
    text = readme.read_text()
    assert "old table" not in text and "old audit" in text
    for horizon in (1, 5, 20):
        assert f"| {horizon} | arima |" in text
        [naive] = [line for line in text.splitlines() if line.startswith(f"| {horizon} | naive |")]
        assert "| n/a | n/a |" in naive  # no direction called, so none tested


def test_the_gate_audit_scores_each_rules_pick_on_the_next_window(setup):
    folder, env = setup
    readme = folder / "README.md"
    readme.write_text(README)
    result = run_cli(
        "evaluate",
        "--gate-audit",
        "--readme",
        str(readme),
        "--section",
        "gate-audit-test",
        "--per-ticker",
        str(folder / "audit.csv"),
        "--workers",
        "1",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    every = pd.read_csv(folder / "audit.csv")
    assert every.groupby("horizon").size().to_dict() == {1: 2, 5: 2, 20: 2}
    records = every[every["horizon"] == 1].set_index("ticker")
    assert records.loc["WALK", "gate_choice"] == "naive()"
    assert records.loc["MOM", "gate_choice"].startswith(("arima", "ridge"))
    assert records.loc["MOM", "gate_p_value"] < 0.05 and records.loc["MOM", "gate_next_ratio"] < 1
    # A random walk keeps naive at every horizon; each horizon's next window starts h - 1
    # origins after its gate window, so no outcome the gate saw is scored again.
    assert (every.loc[every["ticker"] == "WALK", "gate_choice"] == "naive()").all()
    import numpy as np

    gate_days = int(env["STOCKCAST_BACKTEST_DAYS"])  # the bars are business days
    for row in every.itertuples(index=False):
        assert np.busday_count(row.gate_start, row.next_start) == gate_days + row.horizon - 1
    text = readme.read_text()
    assert "old audit" not in text and "old table" in text and text.endswith("tail\n")
    for heading in ("#### One session ahead", "#### 5 sessions ahead", "#### 20 sessions ahead"):
        assert heading in text
    assert "| tickers given a non-naive champion | 50.0% |" in text
    assert "Model Confidence Set" in text and "| MOM | 20 |" in text


def test_a_readme_without_the_section_is_refused_and_left_alone(setup):
    folder, env = setup
    readme = folder / "other.md"
    readme.write_text("# no markers\n")
    result = run_cli(
        "evaluate", "--gate-audit", "--readme", str(readme), "--section", "missing", "--workers", "1", env=env
    )
    assert result.returncode == 1 and "<!-- missing:start -->" in result.stderr
    assert "progress" not in result.stderr  # refused before any backtest ran
    assert readme.read_text() == "# no markers\n"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One ticker, 320 sessions, two candidates: a whole evaluation takes a few seconds."""
    folder = tmp_path_factory.mktemp("evaluate-small")
    path = folder / "bars.parquet"
    autocorrelated_bars(320, phi=0.5, seed=5).assign(ticker="MOM").drop(columns=["source"]).to_parquet(
        path, index=False
    )
    env = {
        "STOCKCAST_DATA_DIR": str(folder / "data"),
        "STOCKCAST_SOURCE": f"file:{path}",
        "STOCKCAST_TICKERS": "MOM",
        "STOCKCAST_START_DATE": "2010-01-01",
        "STOCKCAST_MODELS": "naive,ridge",
        "STOCKCAST_HORIZONS": "1,5",
        "STOCKCAST_BACKTEST_DAYS": "60",
        "STOCKCAST_MIN_TRAIN_DAYS": "120",
        "STOCKCAST_REFIT_EVERY_DAYS": "30",
    }
    return folder, env


def test_the_page_the_rows_and_the_readme_section_agree_and_a_rerun_changes_nothing(small, tmp_path):
    _, env = small
    readme, page, rows_file = (
        tmp_path / "README.md",
        tmp_path / "out" / "quality.md",
        tmp_path / "out" / "rows.csv",
    )
    readme.write_text(README)
    arguments = ["evaluate", "--output", str(page), "--per-ticker", str(rows_file), "--readme", str(readme)]
    first = run_cli(*arguments, env=env)
    assert first.returncode == 0, first.stderr

    written = page.read_text()
    every = pd.read_csv(rows_file)
    assert set(every["horizon"]) == {1, 5} and set(every["ticker"]) == {"MOM"}
    assert (every["n_forecasts"] == 60).all()  # STOCKCAST_BACKTEST_DAYS scored sessions each
    for horizon in (1, 5):
        rows = every[every["horizon"] == horizon].set_index("candidate")
        assert set(rows.index) == {"naive", "ridge"}
        ratio = rows.loc["ridge", "rmse"] / rows.loc["naive", "rmse"]
        # The table is computed from the rows.
        assert f"| {horizon} | ridge | {ratio:.4f} | {ratio:.4f} |" in written
        assert f"| {horizon} | naive | 1.0000 | 1.0000 |" in written
    assert " ".join(written.split()) in " ".join(first.stdout.split())  # printed as written (wrapped)
    # The README's section is the page, between its markers; the rest stays as it was.
    assert readme.read_text() == README.replace("old table\n", written)

    again = run_cli(*arguments, env=env)
    assert again.returncode == 0, again.stderr
    assert readme.read_text() == README.replace("old table\n", written)  # replaced, not added
    assert page.read_text() == written
    pd.testing.assert_frame_equal(pd.read_csv(rows_file), every)


@pytest.mark.parametrize(
    ("arguments", "settings", "code", "said"),
    [
        (
            ["--source", "file:{folder}/missing.parquet"],
            {},
            1,
            "error: price file not found: {folder}/missing.parquet",
        ),
        (["--tickers", "NOPE"], {}, 1, "failed NOPE: not in {folder}/bars.parquet"),
        (
            [],
            {"STOCKCAST_BACKTEST_DAYS": "400"},
            1,
            "each needs 580 labelled days (120 to train, 60 to calibrate, 400 to score)",
        ),
        (["--source", "bogus"], {}, 1, "error: invalid setting STOCKCAST_SOURCE"),
        ([], {"STOCKCAST_MODELS": "naive,prophet"}, 1, "error: invalid setting STOCKCAST_MODELS"),
        (["--workers", "-1"], {}, 2, "Invalid value for '--workers'"),
        (
            ["--gate-audit", "--section", "gate-audit-test", "--workers", "1", "--tickers", "NOPE"],
            {},
            1,
            "failed NOPE: not in {folder}/bars.parquet",
        ),
    ],
    ids=[
        "missing file",
        "ticker not in the file",
        "window too long",
        "unknown source",
        "unknown model",
        "negative workers",
        "gate audit of a ticker not in the file",
    ],
)
def test_bad_arguments_are_refused_with_the_reason_and_nothing_written(
    small, tmp_path, arguments, settings, code, said
):
    folder, env = small
    readme, page = tmp_path / "README.md", tmp_path / "quality.md"
    readme.write_text(README)
    result = run_cli(
        "evaluate",
        *[argument.format(folder=folder) for argument in arguments],
        "--output",
        str(page),
        "--readme",
        str(readme),
        env={**env, **settings},
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert said.format(folder=folder) in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert not page.exists() and readme.read_text() == README
