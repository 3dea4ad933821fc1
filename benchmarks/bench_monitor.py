"""Monitoring: the daily monitor step (`monitoring.monitor.monitor`, what `stockcast run` and
`stockcast monitor` call) for 500 tickers of ../shared/data/sp500_2018_2023.parquet against
the same Kolmogorov-Smirnov tests and rolling RMSE computed directly with numpy and scipy from
the same stores; skipped when that file is absent.

    .venv/bin/python benchmarks/bench_monitor.py [--tickers 500] [--report-sample 10] [--json FILE]

The store (untimed): the 500 tickers with the longest histories, their bars up to 2023-05-24
and a naive champion each, trained on them; then the 25 sessions to 2023-06-29, each with the
forecast the champion makes that day, scored against the next close: 24 scored forecasts per
ticker (the rolling window is 20), as after 25 days in production. The first ticker is trained by `train_many` (MLflow
runs, the packaged model, registration, the gate); the others are registered through the same
registry adapter with the tags a training writes, from their own walk-forward backtests, and
the first ticker's logged model as their artifact (the monitor reads versions, aliases and
tags, never a model), because training 500 tickers the full way takes about 9 minutes here.
Forecasts come from `make_forecast` with each champion's intervals, as the daily job logs them.

Measured, each figure beside the direct computation timed in the same run:

- the step on a day on which no Evidently report is due, for all 500 tickers (the step then
  does what it does with `--no-reports`: reads the stores, and computes each ticker's verdict,
  rolling errors, coverage, scores and drifted features, and stores the rows);
- the step averaged over the report cadence: reports fall due every STOCKCAST_REPORT_EVERY_DAYS
  (5) weekdays, all tickers on the same day once they started together, so one day in five also
  writes every ticker's two Evidently reports. A report day for 500 tickers takes well over ten
  minutes here, too long for `make bench`: the reports' cost is measured on --report-sample
  tickers (the step on them with their reports due, less the step on them without) and counted
  500 times over the cadence (a report costs the same for every ticker: the same 29 features on
  250 and 20 sessions). With --report-sample 500 it is measured on all of them.

The direct computation reads the same stores the same way (the bars and scored forecasts of the
500 tickers in one query each, the registered versions and aliases in a few searches, as the
step does), builds the features with stockcast's feature code, and computes per ticker the
two-sample KS test of each feature (scipy, vectorised over the features) and the RMSE of the
last 20 scored forecasts and its ratio to the backtest RMSE. Its drifted features and RMSE are
checked equal to the step's for every ticker.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from figures import Figure, emit

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT.parent / "shared" / "data" / "sp500_2018_2023.parquet"
CUT = "2023-05-24"  # the champions' data end; 25 sessions of the file follow it
GOAL = 0.5  # the step may take at most twice the direct computation
QUIET_DAY = "daily monitor step, 500 tickers, a day no report is due, vs the same KS tests and rolling RMSE computed directly (direct time / step time; goal: the step within 2x)"
CADENCE = "daily monitor step, 500 tickers, averaged over the report cadence (Evidently reports every 5 weekdays), vs the same KS tests and rolling RMSE computed directly (direct time / step time; goal: the step within 2x)"
CONFIGURATION = {
    "STOCKCAST_MODELS": "naive",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "250",
    "STOCKCAST_START_DATE": "2018-01-01",
}


def tickers_of(count: int) -> list[str]:
    names = pd.read_parquet(PRICES, columns=["ticker"])["ticker"].astype(str)
    lengths = names.value_counts()
    return sorted(lengths.sort_values(ascending=False, kind="stable").index[:count])


def labelled_rows(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from stockcast.features.build import TARGET_COLUMN, add_target, build_features, complete_rows

    rows = complete_rows(add_target(build_features(bars))).dropna(subset=[TARGET_COLUMN])
    return {str(ticker): frame.reset_index(drop=True) for ticker, frame in rows.groupby("ticker")}


def build_store(folder: Path, tickers: list[str]) -> Any:
    """The monitoring store described above; returns its context (settings from STOCKCAST_*)."""
    from stockcast.context import Context
    from stockcast.features.build import FEATURE_COLUMNS, build_features
    from stockcast.features.offline import refresh_feature_store
    from stockcast.forecasting.predict import batch_request_id, feature_values, make_forecast
    from stockcast.ingest.ingest import ingest
    from stockcast.lifecycle.train import backtest_config, training_lineage, version_tags
    from stockcast.monitoring.actuals import fill_actuals
    from stockcast.pipeline import train_many
    from stockcast.registry.mlflow_registry import CHAMPION, model_name_for
    from stockcast.registry.pyfunc_model import ForecastModel
    from stockcast.settings import load_settings
    from stockcast.training.backtest import run_backtests
    from stockcast.training.models import NaiveForecaster, default_spec

    began = time.perf_counter()
    keep = {key: value for key, value in os.environ.items() if not key.startswith(("STOCKCAST_", "MLFLOW_"))}
    os.environ.clear()
    os.environ.update(
        {
            **keep,
            **CONFIGURATION,
            "STOCKCAST_DATA_DIR": str(folder),
            "STOCKCAST_SOURCE": f"file:{PRICES}",
            "STOCKCAST_TICKERS": ",".join(tickers),
        }
    )
    history = Context(load_settings(end_date=CUT))
    failed = ingest(history, tickers).failures
    if failed:
        raise SystemExit(f"ingestion failed: {next(iter(failed.items()))}")
    refresh_feature_store(history)
    first, others = tickers[0], tickers[1:]
    _, failures = train_many(history, [first], force=True)
    if failures:
        raise SystemExit(f"training {first} failed: {failures[first]}")
    registry = history.registry
    champion = registry.champion(first)
    assert champion is not None
    logged = registry._client.get_model_version(model_name_for(first), champion.version)
    rows_by_ticker = labelled_rows(history.store.load_prices(tickers))
    settings = history.settings
    naive = default_spec("naive")
    bounds = {first: champion}
    for ticker in others:
        rows = rows_by_ticker[ticker]
        result = run_backtests(rows, [naive], backtest_config(history), settings.random_seed)[naive.key()]
        lineage = training_lineage(rows)
        tags = version_tags(result, rows, lineage, settings.interval_level)
        registered = registry.register(ticker, logged.source, logged.run_id, tags)
        registry.set_alias(ticker, CHAMPION, registered.version)
        bounds[ticker] = registered
    print(f"  store: {len(tickers)} champions registered ({time.perf_counter() - began:.0f} s)", flush=True)

    context = Context(load_settings())
    ingest(context, tickers)
    features = build_features(context.store.load_prices(tickers)).dropna(subset=FEATURE_COLUMNS)
    recent = features.loc[features["date"] > pd.Timestamp(CUT)]
    records = []
    for ticker, rows in recent.groupby("ticker"):
        version = bounds[str(ticker)]
        model = ForecastModel(
            NaiveForecaster(),
            naive.key(),
            "naive",
            {
                float(level): (lower, upper)
                for level, (lower, upper) in _interval_bounds(version.tags["interval_bounds"]).items()
            },
            float(version.tags["level"]),
        )
        for _, row in rows.iterrows():
            forecast = make_forecast(str(ticker), row, model, version.name, version.version)
            records.append(forecast.record(batch_request_id(forecast), "batch", feature_values(row)))
    context.store.log_forecasts(records)
    filled = fill_actuals(context, tickers).filled
    print(
        f"  store: {len(records)} forecasts logged, {filled} scored ({time.perf_counter() - began:.0f} s)",
        flush=True,
    )
    return context


def _interval_bounds(tag: str) -> dict[float, tuple[float, float]]:
    """A version's ``interval_bounds`` tag ({"90": [lower, upper], ...}) by level."""
    import json

    return {int(key) / 100: (float(lower), float(upper)) for key, (lower, upper) in json.loads(tag).items()}


def direct(context: Any, tickers: list[str]) -> dict[str, dict[str, Any]]:
    """The same KS tests and rolling RMSE, computed straight from the stores with numpy and
    scipy: per ticker, the drifted features and the RMSE of the last scored forecasts."""
    from scipy import stats

    from stockcast.features.build import FEATURE_COLUMNS, build_features

    settings = context.settings
    window, reference_days = settings.drift_window, settings.reference_days
    bars = context.store.load_prices(tickers)
    scored = context.store.evaluated_forecasts_of(tickers)
    versions = context.registry.versions_of(tickers)
    champions = context.registry.aliased(tickers)
    features = build_features(bars).dropna(subset=FEATURE_COLUMNS)
    columns = features[FEATURE_COLUMNS].to_numpy(float)
    dates = features["date"].to_numpy()
    names = features["ticker"].to_numpy()
    bounds = np.flatnonzero(names[1:] != names[:-1]) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(names)]
    scored = scored.sort_values(["ticker", "as_of", "id"])
    errors = scored.groupby("ticker", sort=False).tail(window)
    rmse = errors.groupby("ticker")["error"].apply(lambda values: float(np.sqrt(np.mean(np.square(values)))))
    served = errors.groupby("ticker")["model_version"].last()
    answers = {}
    for start, end in zip(starts, ends, strict=True):
        ticker = str(names[start])
        champion = versions[ticker][champions[ticker]]
        data_end = np.datetime64(champion.tags["data_end"])
        current = slice(end - window, end)
        before = np.flatnonzero(dates[start : end - window] <= data_end)[-reference_days:] + start
        p_values = stats.ks_2samp(columns[before], columns[current], axis=0).pvalue
        drifted = [column for column, p in zip(FEATURE_COLUMNS, p_values, strict=True) if p <= 0.05]
        backtest = versions[ticker][str(served[ticker])].metric("rmse")
        answers[ticker] = {"drifted": drifted, "rmse": rmse[ticker], "ratio": rmse[ticker] / backtest}
    return answers


def timed(call: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    answer = call()
    return answer, time.perf_counter() - began


def check_same(healths: list[Any], answers: dict[str, dict[str, Any]]) -> None:
    """The step's figures are the direct computation's, ticker by ticker."""
    assert len(healths) == len(answers), (len(healths), len(answers))
    for health in healths:
        expected = answers[health.ticker]
        assert health.drifted_features == expected["drifted"], health.ticker
        assert np.isclose(health.performance.rolling_rmse, expected["rmse"], rtol=1e-12), health.ticker
        assert np.isclose(health.performance.ratio, expected["ratio"], rtol=1e-9), health.ticker


def measure(count: int, sample_size: int) -> list[Figure]:
    from stockcast.monitoring.monitor import monitor, read_inputs

    tickers = tickers_of(count)
    with tempfile.TemporaryDirectory() as folder:
        print(f"monitoring {len(tickers)} tickers:", flush=True)
        context = build_store(Path(folder), tickers)
        every = context.settings.report_every_days
        read_inputs(context, tickers[:3])  # imports and first connections, untimed
        direct(context, tickers[:3])
        quiet_runs, direct_runs = [], []
        for _ in range(2):  # alternated: direct, step, direct, step
            answers, seconds = timed(lambda: direct(context, tickers))
            direct_runs.append(seconds)
            healths, seconds = timed(lambda: monitor(context, tickers, reports=False))
            quiet_runs.append(seconds)
        check_same(healths, answers)
        sample = tickers[-sample_size:]
        import evidently  # noqa: F401  (Evidently's import, seconds, is paid once per process)

        _, sample_quiet = timed(lambda: monitor(context, sample, reports=False))
        written, sample_due = timed(lambda: monitor(context, sample))
        if not all(health.report_written for health in written):
            raise SystemExit("the sample's reports were not all due on its first monitored day")
        check_same(written, {ticker: answers[ticker] for ticker in sample})
    quiet, reference = min(quiet_runs), min(direct_runs)
    per_report = max(sample_due - sample_quiet, 0.0) / len(sample)
    averaged = quiet + len(tickers) / every * per_report
    drifted = sum(len(health.drifted_features) > 0 for health in healths)
    watch = sum(health.status == "watch" for health in healths)
    print(
        f"  direct KS + rolling RMSE: {reference:.2f} s (runs {', '.join(f'{s:.2f}' for s in direct_runs)})\n"
        f"  the step, no report due: {quiet:.2f} s (runs {', '.join(f'{s:.2f}' for s in quiet_runs)}); "
        f"{drifted} tickers with drifted features, {watch} on watch; figures equal to the direct ones\n"
        f"  reports: {len(sample)} tickers {sample_due:.1f} s with their reports due, {sample_quiet:.2f} s "
        f"without: {per_report:.2f} s a ticker's two reports\n"
        f"  the step averaged over a {every}-weekday cadence: {quiet:.2f} + {len(tickers)} / {every} x "
        f"{per_report:.2f} = {averaged:.1f} s a day"
    )
    scaled = "measured on all of them" if len(sample) >= len(tickers) else f"measured on {len(sample)}"
    return [
        Figure(
            "Monitoring",
            QUIET_DAY,
            f"{quiet:.2f} s",
            f"{reference:.2f} s",
            reference / quiet,
            GOAL,
            f"{len(tickers)} tickers; the faster of 2 runs each, alternated; drifted features and "
            f"rolling RMSE checked equal for every ticker; {watch} tickers on watch",
        ),
        Figure(
            "Monitoring",
            CADENCE,
            f"{averaged:.1f} s a day",
            f"{reference:.2f} s",
            reference / averaged,
            GOAL,
            f"{quiet:.2f} s a day plus every ticker's reports one day in {every}: "
            f"{per_report:.2f} s a ticker ({scaled} tickers)",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--report-sample", type=int, default=10, help="tickers whose reports are timed")
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    emit(measure(args.tickers, min(args.report_sample, args.tickers)), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
