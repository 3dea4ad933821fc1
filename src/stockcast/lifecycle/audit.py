"""An out-of-sample audit of the promotion gate itself (`stockcast evaluate --gate-audit`).

A gate is only as good as the champions it picks do on days it has not seen. Per ticker, every
candidate is backtested walk-forward over two consecutive windows; the gate runs on the first
and its choice is scored on the second, next to the choices of the same gate with Clark-West
against naive instead of DM-HLN, and of the old rule (lowest RMSE wins, naive included). A rolling replay over the second window re-runs each rule every
``review_every_days`` sessions on the trailing window, as retraining would, serving its current
choice until the next review: that counts champion changes per ticker-year and scores what
would have been served. The Model Confidence Set (Hansen, Lunde and Nason) of the candidates on
the first window and Hansen's SPA test against naive come from ``arch.bootstrap``, as a
bootstrap view beside the gate's Holm-corrected tests. Pure but for ``audit_many``'s process pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from stockcast.horizons import horizon_label
from stockcast.modeling.gate import GateWindow
from stockcast.modeling.significance import CLARK_WEST, DM_HLN, clark_west, diebold_mariano
from stockcast.modeling.specs import ModelSpec, is_naive
from stockcast.registry.promotion import decide
from stockcast.training.backtest import (
    BacktestConfig,
    NotEnoughHistoryError,
    backtest_candidates,
    common_window,
)

README_START = "<!-- gate-audit:start -->"
README_END = "<!-- gate-audit:end -->"
SESSIONS_PER_YEAR = 252
WORSE_BY = 0.02  # a served champion this much worse than naive over the next window is a failure
GATE, GATE_CW, LOWEST = "gate", "gate_cw", "lowest_rmse"
RULES = (GATE, GATE_CW, LOWEST)


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


def choose(rule: str, window: GateWindow, champion: str | None, audit: AuditConfig) -> str:
    """The specification a rule serves after reviewing ``window`` with ``champion`` in place."""
    if rule == LOWEST:
        return lowest_rmse(window)
    test = CLARK_WEST if rule == GATE_CW else DM_HLN
    decision = decide(window, champion, audit.alpha, audit.margin, versus_naive_test=test)
    chosen = decision.chosen if decision.promote else champion
    return chosen or lowest_rmse(window)


def _rolling(full: GateWindow, audit: AuditConfig, rule: str) -> tuple[float, int]:
    """(served RMSE / naive over the next window, champion changes) when the rule is re-run
    every review on the trailing gate window and its choice serves until the next review. At
    horizon h the window a review reads ends h - 1 origins before it: their outcomes are the
    newest known then."""
    gap = full.horizon - 1
    gate, first = audit.gate_days, audit.gate_days + gap
    total = first + audit.next_days
    served = np.empty(audit.next_days)
    champion: str | None = None
    changes = 0
    for start in range(first, total, audit.review_every_days):
        chosen = choose(rule, window_slice(full, start - gap - gate, start - gap), champion, audit)
        changes += champion is not None and chosen != champion
        champion = chosen
        stop = min(start + audit.review_every_days, total)
        served[start - first : stop - first] = full.predicted(chosen)[start:stop]
    return _served_ratio(window_slice(full, first, total), served), changes


def _bootstrap_views(window: GateWindow, audit: AuditConfig, seed: int) -> tuple[list[str], float]:
    """The candidates in the Model Confidence Set on ``window``, and SPA's p-value against naive."""
    from arch.bootstrap import MCS, SPA

    losses = pd.DataFrame({key: (window.actual - window.predicted(key)) ** 2 for key in window.forecasts})
    # Blocks of arch's default length (the root of the window), and at least the horizon: the
    # losses of overlapping forecasts are dependent over h - 1 sessions.
    block = max(window.horizon, int(np.sqrt(len(losses))))
    mcs = MCS(losses, size=audit.mcs_size, reps=audit.bootstrap_reps, block_size=block, seed=seed)
    mcs.compute()
    naive_key = next(key for key in losses if is_naive(key))
    others = losses.drop(columns=naive_key)
    if others.empty:
        return [str(key) for key in mcs.included], float("nan")
    spa = SPA(losses[naive_key], others, reps=audit.bootstrap_reps, block_size=block, seed=seed)
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
    """One ticker's audit record at the backtest's horizon (``rows`` labelled at it); raises
    ``NotEnoughHistoryError`` for a short history. At horizon h the next window starts h - 1
    origins after the gate window ends, so that no outcome the gate saw falls inside it."""
    horizon = backtest.horizon
    gap = horizon - 1
    config = replace(backtest, test_days=audit.gate_days + gap + audit.next_days)
    results = backtest_candidates(rows, specs, config, seed)
    full = common_window(results)
    dates = next(iter(results.values())).forecasts["date"]
    gate_window = window_slice(full, 0, audit.gate_days)
    next_window = window_slice(full, audit.gate_days + gap, audit.gate_days + gap + audit.next_days)
    years = audit.next_days / SESSIONS_PER_YEAR
    record: dict[str, Any] = {
        "ticker": ticker,
        "horizon": horizon,
        "gate_start": dates.iloc[0].date(),
        "next_start": dates.iloc[audit.gate_days + gap].date(),
        "next_end": dates.iloc[-1].date(),
    }
    for rule in RULES:
        chosen = choose(rule, gate_window, None, audit)
        rolling_ratio, changes = _rolling(full, audit, rule)
        record |= {
            f"{rule}_choice": chosen,
            f"{rule}_next_ratio": next_window.rmse(chosen) / next_window.naive_rmse,
            f"{rule}_rolling_ratio": rolling_ratio,
            f"{rule}_changes_per_year": changes / years,
        }
    lowest = record[f"{LOWEST}_choice"]
    if not is_naive(lowest):  # the evidence both tests saw for the old rule's pick
        naive_loss = (gate_window.actual - gate_window.naive) ** 2
        pick_loss = (gate_window.actual - gate_window.predicted(lowest)) ** 2
        record["lowest_rmse_dm_p"] = diebold_mariano(naive_loss, pick_loss, horizon).p_value
        record["lowest_rmse_cw_p"] = clark_west(
            gate_window.actual, gate_window.naive, gate_window.predicted(lowest), horizon
        ).p_value
    decision = decide(gate_window, None, audit.alpha, audit.margin)
    record["gate_p_value"] = decision.evidence(versus_naive=True)[1]
    included, spa_p = _bootstrap_views(gate_window, audit, seed)
    return record | {
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
    horizons: Sequence[int] = (1,),
) -> tuple[pd.DataFrame, list[str]]:
    """Every (ticker, horizon)'s audit record (by horizon, then ticker) over ``workers``
    processes, and those skipped for a short history, with why."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from stockcast.features.build import build_features, for_horizon
    from stockcast.features.offline import training_rows

    features = build_features(bars[bars["ticker"].isin(tickers)])
    records, skipped = [], []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {}
        for ticker in tickers:
            labelled = training_rows(features, ticker, horizons)
            for horizon in horizons:
                job = pool.submit(
                    audit_ticker,
                    ticker,
                    for_horizon(labelled, horizon),
                    specs,
                    replace(backtest, horizon=horizon),
                    audit,
                    seed,
                )
                futures[job] = horizon_label(ticker, horizon)
        for future in as_completed(futures):
            named = futures[future]
            step(f"audited {named}")
            try:
                records.append(future.result())
            except NotEnoughHistoryError as error:
                skipped.append(f"{named}: {error}")
    frame = pd.DataFrame.from_records(records)
    if records:
        frame = frame.sort_values(["horizon", "ticker"]).reset_index(drop=True)
    return frame, sorted(skipped)


def _geometric_mean(values: pd.Series) -> float:
    return float(np.exp(np.log(values).mean())) if len(values) else float("nan")


def summarize_audit(records: pd.DataFrame, alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Per rule: how often it crowned a non-naive model and how those did on the next window."""
    summary: dict[str, dict[str, float]] = {}
    for rule in RULES:
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
    picked = records.loc[~records[f"{LOWEST}_choice"].map(is_naive)]
    summary["evidence"] = {
        "lowest_picks": float(len(picked)),
        "cw_significant_share": float((picked["lowest_rmse_cw_p"] < alpha).mean())
        if len(picked)
        else float("nan"),
        "dm_significant_share": float((picked["lowest_rmse_dm_p"] < alpha).mean())
        if len(picked)
        else float("nan"),
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
    """The audit's page: a section per horizon when there are several (each judged on its own
    windows, with tests whose variance allows for the overlap of its outcomes)."""
    if "horizon" not in records or records["horizon"].nunique() <= 1:
        return _render_one(records, source, audit, candidates, produced_on)
    parts = []
    for horizon, rows in records.groupby("horizon", sort=True):
        ahead = "one session" if horizon == 1 else f"{horizon} sessions"
        parts.append(
            f"#### {ahead.capitalize()} ahead\n\n" + _render_one(rows, source, audit, candidates, produced_on)
        )
    return "\n".join(parts)


def _render_one(
    records: pd.DataFrame, source: str, audit: AuditConfig, candidates: int, produced_on: str
) -> str:
    summary = summarize_audit(records, audit.alpha)
    boot = summary["bootstrap"]
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
        "| next window | gate (DM-HLN vs naive) | same gate, Clark-West vs naive | lowest RMSE wins (old rule) |",
        "|---|---|---|---|",
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
        figures = " | ".join(_number(summary[rule][key], form) for rule in RULES)
        lines.append(f"| {label} | {figures} |")
    lines += [
        "",
        f"Bootstrap views on the gate window (arch.bootstrap, {audit.bootstrap_reps} stationary-bootstrap "
        f"draws): the {1 - audit.mcs_size:.0%} Model Confidence Set holds {boot['mean_mcs_size']:.1f} "
        f"candidates on average and includes naive on {boot['naive_in_mcs_share']:.0%} of tickers; "
        f'Hansen\'s SPA rejects "no candidate beats naive" at {audit.alpha:g} on '
        f"{boot['spa_rejects_share']:.0%} of tickers.",
    ]
    evidence = summary["evidence"]
    if evidence["lowest_picks"]:
        lines += [
            "",
            f"On the {int(evidence['lowest_picks'])} tickers where the old rule crowned a non-naive model, a "
            f"single one-sided test at {audit.alpha:g} (before Holm) called it better than naive with "
            f"Clark-West on {evidence['cw_significant_share']:.0%} of them and with DM-HLN on "
            f"{evidence['dm_significant_share']:.0%}.",
        ]
    if summary[GATE]["promoted_share"] == 0:
        lines += ["", "The gate promoted no candidate on any ticker: naive serves everywhere."]
    return "\n".join(lines) + "\n"


def render_per_ticker(records: pd.DataFrame) -> str:
    """A markdown row per ticker and horizon: both rules' choices and next-window ratios, and the MCS."""
    lines = [
        "| ticker | ahead | gate's champion (p) | next / naive | lowest RMSE's pick | next / naive | MCS (90%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in records.itertuples(index=False):
        p_value = (
            "" if row.gate_p_value is None or pd.isna(row.gate_p_value) else f" (p = {row.gate_p_value:.3f})"
        )
        lines.append(
            f"| {row.ticker} | {getattr(row, 'horizon', 1)} | {kind_of(row.gate_choice)}{p_value} | "
            f"{row.gate_next_ratio:.4f} | {kind_of(row.lowest_rmse_choice)} | {row.lowest_rmse_next_ratio:.4f} | "
            f"{row.mcs} |"
        )
    return "\n".join(lines) + "\n"
