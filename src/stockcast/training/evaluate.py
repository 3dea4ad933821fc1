"""How good are the forecasts? Every candidate's walk-forward backtest on many tickers, summed
up against the naive forecast. Reads bars from a source and writes nothing to the stores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd

from stockcast.features.build import build_features, for_horizon
from stockcast.features.offline import training_rows
from stockcast.modeling.specs import ModelSpec
from stockcast.training.backtest import BacktestConfig, NotEnoughHistoryError, backtest_candidates

README_START = "<!-- forecast-quality:start -->"
README_END = "<!-- forecast-quality:end -->"


def evaluate_candidates(
    bars: pd.DataFrame,
    tickers: list[str],
    specs: list[ModelSpec],
    config: BacktestConfig,
    seed: int = 0,
    step: Callable[[str], None] = lambda _: None,
    horizons: Sequence[int] = (1,),
) -> pd.DataFrame:
    """One row per (ticker, horizon, candidate) with its backtest metrics on the horizon's
    common window (each horizon with its own labels and the gap it needs)."""
    features = build_features(bars[bars["ticker"].isin(tickers)])
    records = []
    for ticker in tickers:
        step(f"backtesting {ticker}")
        labelled = training_rows(features, ticker, horizons)
        for horizon in horizons:
            try:
                results = backtest_candidates(
                    for_horizon(labelled, horizon), specs, replace(config, horizon=horizon), seed
                )
            except NotEnoughHistoryError:
                continue
            for result in results.values():
                window = result.forecasts["date"]
                records.append(
                    {
                        "ticker": ticker,
                        "horizon": horizon,
                        "candidate": result.spec.kind,
                        "window_start": window.iloc[0].date(),
                        "window_end": window.iloc[-1].date(),
                        **result.metrics,
                    }
                )
    return pd.DataFrame.from_records(records)


def summarize(per_ticker: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per horizon and candidate (indexed by both): RMSE relative to naive (median and mean over tickers), share of tickers
    where it beats naive, RMSSE and MSIS (scale-free, so they average across tickers),
    directional accuracy and the share of tickers where Pesaran-Timmermann finds it better than
    the base rate, and interval coverage at each level (means)."""
    frame = per_ticker.assign(rmse_ratio=per_ticker["rmse"] / per_ticker["naive_rmse"])
    if "horizon" not in frame:
        frame = frame.assign(horizon=1)
    grouped = frame.groupby(["horizon", "candidate"], sort=False)
    columns = {
        "median_rmse_vs_naive": grouped["rmse_ratio"].median(),
        "mean_rmse_vs_naive": grouped["rmse_ratio"].mean(),
        "beats_naive_share": grouped["rmse_ratio"].apply(lambda ratio: float((ratio < 1).mean())),
        "directional_accuracy": grouped["directional_accuracy"].mean(),
        "coverage_90": grouped["coverage"].mean(),
        "tickers": grouped["ticker"].nunique(),
    }
    if "rmsse" in frame:
        columns["median_rmsse"] = grouped["rmsse"].median()
    if "msis_90" in frame:
        columns["mean_msis_90"] = grouped["msis_90"].mean()
    if "direction_p_value" in frame:
        # A candidate that never calls a direction (naive) has no test: n/a, not 0%.
        columns["direction_significant_share"] = grouped["direction_p_value"].apply(
            lambda p_values: (
                float((p_values.dropna() < alpha).mean()) if p_values.notna().any() else float("nan")
            )
        )
    for level in ("50", "80"):
        if f"coverage_{level}" in frame:
            columns[f"coverage_{level}"] = grouped[f"coverage_{level}"].mean()
    table = pd.DataFrame(columns).reset_index()
    return table.sort_values(["horizon", "median_rmse_vs_naive"]).set_index(["horizon", "candidate"])


def _percent(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def _share(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%} of tickers"


def _ratio(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.4f}"


def render_markdown(
    summary: pd.DataFrame, per_ticker: pd.DataFrame, source: str, config: BacktestConfig
) -> str:
    window_start, window_end = per_ticker["window_start"].min(), per_ticker["window_end"].max()
    lines = [
        f"Walk-forward backtest of every candidate on {int(summary['tickers'].max())} tickers from `{source}`: "
        f"{config.test_days} scored sessions per ticker ({window_start} to {window_end}), refit every "
        f"{config.refit_every_days} sessions on a {config.train_window_days or 'expanding'}-session window, "
        f"equal-tailed split-conformal intervals; a direct model per horizon (sessions ahead), its "
        f"training rows ending that many sessions before each origin. Produced by `make evaluate` on "
        f"{datetime.now(UTC):%Y-%m-%d}.",
        "",
        "| ahead | candidate | RMSE / naive (median) | RMSE / naive (mean) | beats naive on | RMSSE (median) "
        "| MSIS 90% (mean) | directional accuracy | direction beats base rate (PT, 5%) "
        "| coverage 50 / 80 / 90% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (horizon, candidate), row in summary.iterrows():
        coverage = " / ".join(
            _percent(row.get(f"coverage_{level}", float("nan"))) for level in ("50", "80", "90")
        )
        lines.append(
            f"| {horizon} | {candidate} | {row['median_rmse_vs_naive']:.4f} | {row['mean_rmse_vs_naive']:.4f} | "
            f"{row['beats_naive_share']:.0%} of tickers | {_ratio(row.get('median_rmsse', float('nan')))} | "
            f"{_ratio(row.get('mean_msis_90', float('nan')))} | {_percent(row['directional_accuracy'])} | "
            f"{_share(row.get('direction_significant_share', float('nan')))} | {coverage} |"
        )
    lines += [
        "",
        "Below 1 beats tomorrow = today. RMSSE divides by the in-sample naive one-step RMSE (M5) and MSIS",
        "the interval score by the in-sample naive MAE (M4), so both average across tickers; lower is",
        "better. Directional accuracy counts the days a model called a move (the naive forecast calls",
        "none); Pesaran-Timmermann tests it against the base rate of up days, not against 50% (at h > 1",
        "on every h-th origin, whose outcomes share no session). A candidate that beats naive here by a",
        "small margin has not yet shown an edge: see the gate audit.",
    ]
    return "\n".join(lines) + "\n"


def replace_readme_section(
    readme: str, section: str, start: str = README_START, end: str = README_END
) -> str:
    """Put ``section`` between the README's markers (by default the forecast-quality ones)."""
    if readme.count(start) != 1 or readme.count(end) != 1 or readme.index(start) > readme.index(end):
        raise LookupError(f"the README needs one {start} ... {end} pair of markers")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{section}{end}{tail}"
