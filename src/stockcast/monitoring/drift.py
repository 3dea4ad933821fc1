"""Performance drift: is the champion doing as well in production as its backtest said?

Per ticker, over its scored forecasts (one per day): each error is divided by the walk-forward
backtest RMSE of the model version that made it, and the root mean square of the last
``window`` of those is the *ratio* (1 = as good as the backtest promised). Judging each
forecast by its own model's promise keeps the measure continuous across retrainings. A day is
*above* when the ratio exceeds ``threshold``; the ticker has drifted when the last ``days``
scored days were all above. One bad day is noise; a run of them is drift. With fewer than
``window`` scored forecasts nothing is concluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

OK, WATCH, DRIFT, UNKNOWN = "ok", "watch", "drift", "unknown"


@dataclass(frozen=True)
class DriftRule:
    window: int = 20
    threshold: float = 1.5
    days: int = 5


@dataclass(frozen=True)
class Performance:
    evaluated: int
    rolling_rmse: float | None
    rolling_naive_rmse: float | None
    ratio: float | None
    days_above: int
    coverage: float | None
    directional_accuracy: float | None
    mae: float | None
    status: str
    reason: str


def _rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def rolling_ratio(errors: pd.Series, backtest_rmse: pd.Series, window: int) -> pd.Series:
    """For each scored day with a full window: the RMS of the last ``window`` errors, each
    divided by the backtest RMSE of the model that made it."""
    scaled = errors / backtest_rmse
    return np.sqrt(scaled.pow(2).rolling(window, min_periods=window).mean()).dropna()


def trailing_run(flags: pd.Series) -> int:
    """How many of the last values are True in a row."""
    run = 0
    for flag in reversed(flags.to_list()):
        if not flag:
            break
        run += 1
    return run


def assess(outcomes: pd.DataFrame, backtest_rmse: float | pd.Series | None, rule: DriftRule) -> Performance:
    """``outcomes``: one scored forecast per day, oldest first, with ``error``, ``naive_error``,
    ``covered``, ``predicted_close``, ``last_close``, ``actual_close``. ``backtest_rmse``: one
    figure for all, or per row (the backtest of the version that made each forecast)."""
    count = len(outcomes)
    if count < rule.window:
        return Performance(
            count, None, None, None, 0, None, None, None, UNKNOWN,
            f"{count} of {rule.window} forecasts scored so far",
        )  # fmt: skip
    recent = outcomes.tail(rule.window)
    errors = recent["error"].to_numpy(float)
    naive = recent["naive_error"].dropna().to_numpy(float)
    moved = recent["predicted_close"] != recent["last_close"]
    direction = (
        float(
            (
                np.sign(recent.loc[moved, "predicted_close"] - recent.loc[moved, "last_close"])
                == np.sign(recent.loc[moved, "actual_close"] - recent.loc[moved, "last_close"])
            ).mean()
        )
        if moved.any()
        else None
    )
    rolling_rmse = _rmse(errors)
    base: dict[str, Any] = dict(
        evaluated=count,
        rolling_rmse=rolling_rmse,
        rolling_naive_rmse=_rmse(naive) if len(naive) else None,
        coverage=float(recent["covered"].astype(float).mean()),
        directional_accuracy=direction,
        mae=float(np.mean(np.abs(errors))),
    )
    errors_all = outcomes["error"].astype(float).reset_index(drop=True)
    if isinstance(backtest_rmse, pd.Series):
        baseline = backtest_rmse.astype(float).reset_index(drop=True)
    else:
        baseline = pd.Series(
            np.nan if backtest_rmse is None else float(backtest_rmse), index=errors_all.index
        )
    baseline = baseline.where(baseline > 0)
    if not math.isfinite(baseline.iloc[-rule.window :].max()) or baseline.iloc[-rule.window :].isna().any():
        return Performance(
            **base, ratio=None, days_above=0, status=UNKNOWN, reason="no backtest RMSE to compare with"
        )
    ratios = rolling_ratio(errors_all, baseline, rule.window)
    days_above = trailing_run(ratios > rule.threshold)
    ratio = float(ratios.iloc[-1])
    if days_above >= rule.days:
        status = DRIFT
        reason = f"errors {ratio:.2f}x the backtest RMSE for {days_above} days (limit {rule.threshold}x for {rule.days})"
    elif days_above:
        status = WATCH
        reason = f"errors {ratio:.2f}x the backtest RMSE for {days_above} of {rule.days} days"
    else:
        status = OK
        reason = f"errors {ratio:.2f}x the backtest RMSE"
    return Performance(**base, ratio=ratio, days_above=days_above, status=status, reason=reason)
