"""Delayed labels: each logged forecast meets the close it forecast once that bar is stored.

The actual of a forecast one session ahead made on ``as_of`` is the close of the first stored
session after ``as_of``: normally its ``target_date``; when that day turned out to be a holiday,
the next session that traded (``actual_date`` says which). A forecast h > 1 sessions ahead is
scored by the first stored session on or after its ``target_date`` (h sessions of the exchange
calendar after ``as_of``), never by the sessions in between. Scores are on the forecast's own price
basis: if a split or dividend re-based the stored history since, the stored as-of close no
longer equals the close the forecast was made from, and their ratio re-bases the actual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from stockcast.context import Context


@dataclass
class ActualsReport:
    filled: int = 0
    still_open: int = 0
    by_ticker: dict[str, int] = field(default_factory=dict)
    mapped_to_next_session: int = 0


def score(forecast: pd.Series, bars: pd.DataFrame) -> dict[str, Any] | None:
    """The outcome of one forecast given its ticker's stored bars (``date``, ``close``, sorted),
    or None while the session it forecast is not stored yet."""
    as_of = pd.Timestamp(forecast["as_of"])
    later = bars.loc[bars["date"] > as_of]
    horizon = forecast.get("horizon")
    if horizon is not None and not pd.isna(horizon) and int(horizon) > 1:
        later = later.loc[later["date"] >= pd.Timestamp(forecast["target_date"])]
    if later.empty:
        return None
    actual_bar = later.iloc[0]
    stored_as_of = bars.loc[bars["date"] == as_of, "close"]
    last_close = forecast.get("last_close")
    known_basis = last_close is not None and not pd.isna(last_close) and not stored_as_of.empty
    adjustment = float(stored_as_of.iloc[0]) / float(last_close) if known_basis else 1.0
    actual = float(actual_bar["close"]) / adjustment
    predicted = float(forecast["predicted_close"])
    error = actual - predicted
    naive_error = actual - float(last_close) if known_basis else None
    return {
        "id": forecast["id"],
        "actual_close": actual,
        "actual_date": actual_bar["date"].date(),
        "error": error,
        "abs_error": abs(error),
        "pct_error": 100.0 * error / actual,
        "covered": bool(forecast["lower"] <= actual <= forecast["upper"]),
        "naive_error": naive_error,
        "adjustment": adjustment,
    }


def fill_actuals(context: Context, tickers: list[str] | None = None) -> ActualsReport:
    """Score every open forecast whose session is stored; safe to rerun (a scored forecast is
    never scored again, an open one waits)."""
    store = context.store
    open_rows = store.open_forecasts(tickers)
    report = ActualsReport()
    if open_rows.empty:
        return report
    outcomes = []
    for ticker, rows in open_rows.groupby("ticker", sort=True):
        first = pd.Timestamp(min(rows["as_of"])).date()
        bars = store.load_prices([str(ticker)], start=first)[["date", "close"]].sort_values("date")
        filled = 0
        for _, forecast in rows.iterrows():
            outcome = score(forecast, bars)
            if outcome is None:
                report.still_open += 1
                continue
            outcome["evaluated_at"] = context.now()
            if outcome["actual_date"] != forecast["target_date"]:
                report.mapped_to_next_session += 1
            outcomes.append(outcome)
            filled += 1
        if filled:
            report.by_ticker[str(ticker)] = filled
    report.filled = store.record_actuals(outcomes)
    return report


def daily_outcomes(evaluated: pd.DataFrame, horizon: int = 1) -> pd.DataFrame:
    """One scored forecast per as-of day at ``horizon``: the daily job's (``batch``) where there
    is one, else the first the API served. Many API calls on one day are one forecast."""
    if "horizon" in evaluated:
        evaluated = evaluated.loc[evaluated["horizon"].fillna(1).astype(int) == horizon]
    if evaluated.empty:
        return evaluated
    ranked = evaluated.assign(_batch=np.where(evaluated["origin"] == "batch", 0, 1))
    ranked = ranked.sort_values(["as_of", "_batch", "id"])
    return ranked.drop_duplicates(["as_of"]).drop(columns="_batch").reset_index(drop=True)
