"""An out-of-sample audit of the promotion gate itself (`stockcast evaluate --gate-audit`).

A gate is only as good as the champions it picks do on days it has not seen. Per ticker, every
candidate is backtested walk-forward over two consecutive windows; the gate runs on the first
and its choice is scored on the second, next to the choice of the old rule (lowest RMSE wins,
naive included). A rolling replay over the second window re-runs each rule every
``review_every_days`` sessions on the trailing window, as retraining would, serving its current
choice until the next review: that counts champion changes per ticker-year and scores what
would have been served. The Model Confidence Set (Hansen, Lunde and Nason) of the candidates on
the first window and Hansen's SPA test against naive come from ``arch.bootstrap``, as a
bootstrap view beside the gate's Holm-corrected tests. Pure but for ``audit_many``'s process pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from stockcast.registry.promotion import GateWindow, decide, is_naive
from stockcast.training.backtest import (
    BacktestConfig,
    NotEnoughHistoryError,
    backtest_candidates,
    common_window,
)
from stockcast.training.models import ModelSpec

README_START = "<!-- gate-audit:start -->"
README_END = "<!-- gate-audit:end -->"
SESSIONS_PER_YEAR = 252
WORSE_BY = 0.02  # a served champion this much worse than naive over the next window is a failure
GATE, LOWEST = "gate", "lowest_rmse"


@dataclass(frozen=True)
class AuditConfig:
    gate_days: int = 250
    next_days: int = 250
    review_every_days: int = 20
    alpha: float = 0.05
    margin: float = 0.0
    mcs_size: float = 0.10
    bootstrap_reps: int = 500


def kind_of(spec_key: str) -> str:
    return spec_key.split("(", 1)[0]


def window_slice(window: GateWindow, start: int, stop: int) -> GateWindow:
    return GateWindow(
        actual=window.actual[start:stop],
        naive=window.naive[start:stop],
        forecasts={key: values[start:stop] for key, values in window.forecasts.items()},
        horizon=window.horizon,
    )


def lowest_rmse(window: GateWindow) -> str:
    """The old rule: whichever contender, naive included, scored lowest (ties to naive)."""
    keys = sorted(window.forecasts, key=lambda key: (window.rmse(key), not is_naive(key)))
    return keys[0]


def _served_ratio(window: GateWindow, served: np.ndarray) -> float:
    return float(np.sqrt(np.mean((window.actual - served) ** 2))) / window.naive_rmse


def _rolling(full: GateWindow, audit: AuditConfig, rule: str) -> tuple[float, int]:
    """(served RMSE / naive over the next window, champion changes) when the rule is re-run
    every review on the trailing gate window and its choice serves until the next review."""
    gate, total = audit.gate_days, audit.gate_days + audit.next_days
    served = np.empty(audit.next_days)
    champion: str | None = None
    changes = 0
    for start in range(gate, total, audit.review_every_days):
        trailing = window_slice(full, start - gate, start)
        if rule == GATE:
            decision = decide(trailing, champion, audit.alpha, audit.margin)
            chosen = decision.chosen if decision.promote and decision.chosen else champion
        else:
            chosen = lowest_rmse(trailing)
        assert chosen is not None
        changes += champion is not None and chosen != champion
        champion = chosen
        stop = min(start + audit.review_every_days, total)
        served[start - gate : stop - gate] = full.predicted(chosen)[start:stop]
    return _served_ratio(window_slice(full, gate, total), served), changes


def _bootstrap_views(window: GateWindow, audit: AuditConfig, seed: int) -> tuple[list[str], float]:
    """The candidates in the Model Confidence Set on ``window``, and SPA's p-value against naive."""
    from arch.bootstrap import MCS, SPA

    losses = pd.DataFrame({key: (window.actual - window.predicted(key)) ** 2 for key in window.forecasts})
    mcs = MCS(losses, size=audit.mcs_size, reps=audit.bootstrap_reps, seed=seed)
    mcs.compute()
    naive_key = next(key for key in losses if is_naive(key))
    others = losses.drop(columns=naive_key)
    if others.empty:
        return [str(key) for key in mcs.included], float("nan")
    spa = SPA(losses[naive_key], others, reps=audit.bootstrap_reps, seed=seed)
    spa.compute()
    return [str(key) for key in mcs.included], float(spa.pvalues["consistent"])


def audit_ticker(
    ticker: str,
    rows: pd.DataFrame,
    specs: list[ModelSpec],
    backtest: BacktestConfig,
    audit: AuditConfig,
    seed: int = 0,
) -> dict[str, Any]:
    """One ticker's audit record; raises ``NotEnoughHistoryError`` for a short history."""
    config = replace(backtest, test_days=audit.gate_days + audit.next_days)
    results = backtest_candidates(rows, specs, config, seed)
    full = common_window(results)
    dates = next(iter(results.values())).forecasts["date"]
    gate_window = window_slice(full, 0, audit.gate_days)
    next_window = window_slice(full, audit.gate_days, audit.gate_days + audit.next_days)
    decision = decide(gate_window, None, audit.alpha, audit.margin)
    chosen = decision.chosen or lowest_rmse(gate_window)
    _, p_value = decision.evidence(versus_naive=True)
    old = lowest_rmse(gate_window)
    rolling_gate, changes_gate = _rolling(full, audit, GATE)
    rolling_old, changes_old = _rolling(full, audit, LOWEST)
    included, spa_p = _bootstrap_views(gate_window, audit, seed)
    years = audit.next_days / SESSIONS_PER_YEAR
    return {
        "ticker": ticker,
        "gate_start": dates.iloc[0].date(),
        "next_start": dates.iloc[audit.gate_days].date(),
        "next_end": dates.iloc[-1].date(),
        "gate_choice": chosen,
        "gate_p_value": p_value,
        "gate_next_ratio": next_window.rmse(chosen) / next_window.naive_rmse,
        "lowest_rmse_choice": old,
        "lowest_rmse_next_ratio": next_window.rmse(old) / next_window.naive_rmse,
        "gate_rolling_ratio": rolling_gate,
        "lowest_rmse_rolling_ratio": rolling_old,
        "gate_changes_per_year": changes_gate / years,
        "lowest_rmse_changes_per_year": changes_old / years,
        "mcs": " ".join(sorted(kind_of(key) for key in included)),
        "mcs_size": len(included),
        "naive_in_mcs": any(is_naive(key) for key in included),
        "spa_p_value": spa_p,
    }


def audit_many(
    bars: pd.DataFrame,
    tickers: list[str],
    specs: list[ModelSpec],
    backtest: BacktestConfig,
    audit: AuditConfig,
    seed: int,
    workers: int,
    step: Callable[[str], None] = lambda _: None,
) -> tuple[pd.DataFrame, list[str]]:
    """Every ticker's audit record (by ticker) over ``workers`` processes, and the tickers
    skipped for a short history, with why."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from stockcast.features.build import build_features
    from stockcast.features.offline import training_rows

    features = build_features(bars[bars["ticker"].isin(tickers)])
    records, skipped = [], []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(
                audit_ticker, ticker, training_rows(features, ticker), specs, backtest, audit, seed
            ): ticker
            for ticker in tickers
        }
        for future in as_completed(futures):
            ticker = futures[future]
            step(f"audited {ticker}")
            try:
                records.append(future.result())
            except NotEnoughHistoryError as error:
                skipped.append(f"{ticker}: {error}")
    frame = pd.DataFrame.from_records(records)
    return (frame.sort_values("ticker").reset_index(drop=True) if records else frame), sorted(skipped)


def _geometric_mean(values: pd.Series) -> float:
    return float(np.exp(np.log(values).mean())) if len(values) else float("nan")


def summarize_audit(records: pd.DataFrame, alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Per rule: how often it crowned a non-naive model and how those did on the next window."""
    summary: dict[str, dict[str, float]] = {}
    for rule in (GATE, LOWEST):
        choice = records[f"{rule}_choice"]
        ratio = records[f"{rule}_next_ratio"]
        promoted = ~choice.map(is_naive)
        summary[rule] = {
            "tickers": float(len(records)),
            "promoted_share": float(promoted.mean()),
            "promoted_beat_naive_next": float((ratio[promoted] < 1).mean())
            if promoted.any()
            else float("nan"),
            "geometric_mean_ratio": _geometric_mean(ratio),
            "promoted_geometric_mean_ratio": _geometric_mean(ratio[promoted]),
            "worse_than_naive_share": float((ratio > 1 + WORSE_BY).mean()),
            "rolling_geometric_mean_ratio": _geometric_mean(records[f"{rule}_rolling_ratio"]),
            "rolling_worse_than_naive_share": float((records[f"{rule}_rolling_ratio"] > 1 + WORSE_BY).mean()),
            "changes_per_ticker_year": float(records[f"{rule}_changes_per_year"].mean()),
        }
    summary["bootstrap"] = {
        "mean_mcs_size": float(records["mcs_size"].mean()),
        "naive_in_mcs_share": float(records["naive_in_mcs"].mean()),
        "spa_rejects_share": float((records["spa_p_value"] < alpha).mean()),
    }
    return summary


def _number(value: float, form: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else form.format(value)


def render_audit(
    records: pd.DataFrame, source: str, audit: AuditConfig, candidates: int, produced_on: str
) -> str:
    summary = summarize_audit(records, audit.alpha)
    gate, old, boot = summary[GATE], summary[LOWEST], summary["bootstrap"]
    tickers = len(records)
    first, last = records["next_start"].min(), records["next_end"].max()
    lines = [
        f"Gate audit on {tickers} tickers from `{source}`: each rule picks a champion among "
        f"{candidates} candidates on {audit.gate_days} walk-forward sessions, which is then scored on "
        f"the next {audit.next_days} (from {first} to {last}); the rolling rows re-run the rule every "
        f"{audit.review_every_days} sessions on the trailing window and serve its choice until the next "
        f"review. Gate: one-sided tests at alpha = {audit.alpha:g}, Holm over the candidates, margin "
        f"{audit.margin:.1%}. Produced by `stockcast evaluate --gate-audit` on {produced_on}.",
        "",
        "| next window | significance gate | lowest RMSE wins (old rule) |",
        "|---|---|---|",
    ]
    rows = [
        ("tickers given a non-naive champion", "promoted_share", "{:.1%}"),
        ("of those, beat naive on the next window", "promoted_beat_naive_next", "{:.1%}"),
        ("served / naive RMSE, geometric mean over all tickers", "geometric_mean_ratio", "{:.4f}"),
        (
            "served / naive RMSE, geometric mean over non-naive champions",
            "promoted_geometric_mean_ratio",
            "{:.4f}",
        ),
        (f"tickers served a champion > {WORSE_BY:.0%} worse than naive", "worse_than_naive_share", "{:.1%}"),
        ("rolling: served / naive RMSE, geometric mean", "rolling_geometric_mean_ratio", "{:.4f}"),
        (f"rolling: tickers > {WORSE_BY:.0%} worse than naive", "rolling_worse_than_naive_share", "{:.1%}"),
        ("rolling: champion changes per ticker-year", "changes_per_ticker_year", "{:.2f}"),
    ]
    for label, key, form in rows:
        lines.append(f"| {label} | {_number(gate[key], form)} | {_number(old[key], form)} |")
    lines += [
        "",
        f"Bootstrap views on the gate window (arch.bootstrap, {audit.bootstrap_reps} stationary-bootstrap "
        f"draws): the {1 - audit.mcs_size:.0%} Model Confidence Set holds {boot['mean_mcs_size']:.1f} "
        f"candidates on average and includes naive on {boot['naive_in_mcs_share']:.0%} of tickers; "
        f'Hansen\'s SPA rejects "no candidate beats naive" at {audit.alpha:g} on '
        f"{boot['spa_rejects_share']:.0%} of tickers.",
    ]
    if gate["promoted_share"] == 0:
        lines += ["", "The gate promoted no candidate on any ticker: naive serves everywhere."]
    return "\n".join(lines) + "\n"


def render_per_ticker(records: pd.DataFrame) -> str:
    """A markdown row per ticker: both rules' choices and next-window ratios, and the MCS."""
    lines = [
        "| ticker | gate's champion (p) | next / naive | lowest RMSE's pick | next / naive | MCS (90%) |",
        "|---|---|---|---|---|---|",
    ]
    for row in records.itertuples(index=False):
        p_value = (
            "" if row.gate_p_value is None or pd.isna(row.gate_p_value) else f" (p = {row.gate_p_value:.3f})"
        )
        lines.append(
            f"| {row.ticker} | {kind_of(row.gate_choice)}{p_value} | {row.gate_next_ratio:.4f} | "
            f"{kind_of(row.lowest_rmse_choice)} | {row.lowest_rmse_next_ratio:.4f} | {row.mcs} |"
        )
    return "\n".join(lines) + "\n"
