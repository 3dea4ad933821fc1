"""Walk-forward backtests: one code path for every candidate, never fitting on the future.

At horizon ``h`` the label of the row dated ``s`` is the close ``h`` sessions after ``s``, so
it is known from that session on. For an origin day ``t`` a model is fitted only on rows whose
label is known at ``t``: rows dated ``h`` sessions before ``t`` or earlier (at ``h`` = 1, the
rows before ``t``). Models are refitted every ``refit_every_days`` origins (the cutoff of each
window), on an expanding or a rolling window of history; every origin of a window forecasts
with the model of its cutoff, whose labels all end by the cutoff.

Prediction intervals are split-conformal, equal-tailed and online: at each level (50, 80, 90%
and the configured one) the bounds at an origin are two order statistics of the signed,
volatility-scaled out-of-sample errors of the earlier origins whose outcome is known by then
(at horizon ``h``, those ``h`` or more sessions before it), times that origin's volatility
(see ``intervals.py``). A warm-up stretch of ``calibration_days`` origins before the
scored window supplies the first errors and is not scored. Scale-free scores (RMSSE, MSIS,
scaled pinball loss) divide by the naive forecast's in-sample one-step error over the training
window of the first scored origin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stockcast.features.build import FEATURE_COLUMNS, TARGET_COLUMN
from stockcast.modeling.gate import GateWindow
from stockcast.modeling.intervals import (
    equal_tailed_quantiles,
    interval_levels,
    interval_scale,
    level_key,
    online_equal_tailed,
)
from stockcast.modeling.results import BacktestResult
from stockcast.modeling.specs import ModelSpec
from stockcast.training.metrics import insample_naive_scales, score_forecasts
from stockcast.training.models import Forecaster, default_spec, make_forecaster

log = logging.getLogger(__name__)
# Below this many labelled days not even the naive forecast's interval can be calibrated.
MIN_NAIVE_DAYS = 40


class NotEnoughHistoryError(ValueError):
    """Too few labelled rows for the requested backtest."""


@dataclass(frozen=True)
class BacktestConfig:
    test_days: int = 250
    refit_every_days: int = 20
    min_train_days: int = 250
    train_window_days: int | None = 1000
    calibration_days: int = 60
    level: float = 0.9
    horizon: int = 1  # sessions ahead; ``rows`` carry that horizon's label in TARGET_COLUMN

    @property
    def rows_needed(self) -> int:
        return self.min_train_days + self.horizon - 1 + self.calibration_days + self.test_days


def _training_slice(rows: pd.DataFrame, end: int, window: int | None) -> pd.DataFrame:
    """The ``window`` rows before index ``end`` (all of them when None)."""
    start = 0 if window is None else max(0, end - window)
    return rows.iloc[start:end]


def labels_known_by(cutoff: int, horizon: int) -> int:
    """The end (exclusive) of the rows whose label is known at the origin of row ``cutoff``:
    row ``i``'s label is the close of row ``i + horizon``, so ``i + horizon <= cutoff``."""
    return cutoff - horizon + 1


def fit_on_history(
    spec: ModelSpec, rows: pd.DataFrame, window: int | None, seed: int = 0, horizon: int = 1
) -> Forecaster:
    """Fit a candidate on the most recent ``window`` labelled rows (all when None): every label
    of ``rows`` is known at the newest bar, the origin the fitted model forecasts from."""
    train = _training_slice(rows, len(rows), window)
    return make_forecaster(spec, seed, horizon).fit(train[FEATURE_COLUMNS], train[TARGET_COLUMN])


def walk_forward(
    rows: pd.DataFrame,
    spec: ModelSpec,
    config: BacktestConfig,
    seed: int = 0,
    on_block: Callable[[int, float], None] | None = None,
) -> BacktestResult:
    """Backtest one candidate on the labelled, complete rows of one ticker (sorted by date).

    ``on_block(step, rmse)`` is told the running RMSE (log-return space) after each refit
    window, so a tuner can stop an unpromising trial early.
    """
    rows = rows.reset_index(drop=True)
    count = len(rows)
    horizon = config.horizon
    if count < config.rows_needed:
        gap = f", {horizon - 1} between training and its first origin" if horizon > 1 else ""
        raise NotEnoughHistoryError(
            f"{count} labelled days, the backtest needs {config.rows_needed} "
            f"({config.min_train_days} to train{gap}, {config.calibration_days} to calibrate, "
            f"{config.test_days} to score)"
        )
    first_origin = count - config.test_days - config.calibration_days
    predicted = np.empty(count - first_origin)
    cutoffs = np.empty(count - first_origin, dtype="datetime64[ns]")
    model: Forecaster | None = None
    for cutoff in range(first_origin, count, config.refit_every_days):
        train = _training_slice(rows, labels_known_by(cutoff, horizon), config.train_window_days)
        model = make_forecaster(spec, seed, horizon).fit(train[FEATURE_COLUMNS], train[TARGET_COLUMN])
        block = rows.iloc[cutoff : cutoff + config.refit_every_days]
        predicted[cutoff - first_origin : cutoff - first_origin + len(block)] = model.predict(block)
        cutoffs[cutoff - first_origin : cutoff - first_origin + len(block)] = rows["date"].iloc[cutoff]
        if on_block is not None:
            done = cutoff - first_origin + len(block)
            errors = (
                rows[TARGET_COLUMN].to_numpy(float)[first_origin : first_origin + done] - predicted[:done]
            )
            on_block((cutoff - first_origin) // config.refit_every_days, float(np.sqrt(np.mean(errors**2))))

    origins = rows.iloc[first_origin:].reset_index(drop=True)
    actual_log_return = origins[TARGET_COLUMN].to_numpy(float)
    scale = interval_scale(origins)
    scores = (actual_log_return - predicted) / scale
    levels = interval_levels(config.level)
    # Each origin's bounds use only the scores of origins whose outcome it has seen.
    online = online_equal_tailed(scores, levels, delay=horizon)

    close = origins["close"].to_numpy(float)
    columns: dict[str, Any] = {
        "date": origins["date"],
        "cutoff": cutoffs,
        "close": close,
        "actual_close": close * np.exp(actual_log_return),
        "predicted_close": close * np.exp(predicted),
        "naive_close": close,
    }
    for level, (lower, upper) in online.items():
        columns[f"lower_{level_key(level)}"] = close * np.exp(predicted + lower * scale)
        columns[f"upper_{level_key(level)}"] = close * np.exp(predicted + upper * scale)
    columns["lower"] = columns[f"lower_{level_key(config.level)}"]
    columns["upper"] = columns[f"upper_{level_key(config.level)}"]
    scored = pd.DataFrame(columns).iloc[config.calibration_days :].reset_index(drop=True)
    first_scored = first_origin + config.calibration_days
    history = _training_slice(rows, first_scored, config.train_window_days)["close"].to_numpy(float)
    insample_mse, insample_mae = insample_naive_scales(history)
    importances = getattr(model, "feature_importances", lambda: None)()
    return BacktestResult(
        spec=spec,
        forecasts=scored,
        metrics=score_forecasts(scored, levels, insample_mse, insample_mae, horizon),
        interval_bounds={level: equal_tailed_quantiles(scores, level) for level in levels},
        feature_importances=importances,
        horizon=horizon,
    )


def backtest_candidates(
    rows: pd.DataFrame, specs: list[ModelSpec], config: BacktestConfig, seed: int = 0
) -> dict[str, BacktestResult]:
    """Every candidate on the same rows and the same scored window, keyed by spec key."""
    return {spec.key(): walk_forward(rows, spec, config, seed) for spec in specs}


def _short_history_config(rows: pd.DataFrame, config: BacktestConfig) -> BacktestConfig:
    calibration = max(len(rows) // 3, 20)
    return BacktestConfig(
        # The first origin's model needs no training rows (naive), only the gap's.
        test_days=len(rows) - calibration - (config.horizon - 1),
        refit_every_days=len(rows),
        min_train_days=0,
        train_window_days=None,
        calibration_days=calibration,
        level=config.level,
        horizon=config.horizon,
    )


def run_backtests(
    rows: pd.DataFrame, specs: list[ModelSpec], config: BacktestConfig, seed: int
) -> dict[str, BacktestResult]:
    """All candidates on one window; with too little history only the naive forecast, which
    needs no training, over the days there are."""
    try:
        return backtest_candidates(rows, specs, config, seed)
    except NotEnoughHistoryError as error:
        # The naive forecast's calibration needs MIN_NAIVE_DAYS origins after the horizon's gap.
        needed = MIN_NAIVE_DAYS + config.horizon - 1
        if len(rows) < needed:
            raise NotEnoughHistoryError(f"{len(rows)} labelled days; at least {needed} needed") from error
        log.warning("%s; only the naive forecast is evaluated", error)
        naive = default_spec("naive")
        return backtest_candidates(rows, [naive], _short_history_config(rows, config), seed)


def common_window(results: dict[str, BacktestResult]) -> GateWindow:
    """Every candidate's forecasts on the window they share, as the promotion gate reads it
    (with their horizon: the gate's tests use a HAC variance over h-1 lags)."""
    any_result = next(iter(results.values()))
    first = any_result.forecasts
    return GateWindow(
        actual=first["actual_close"].to_numpy(float),
        naive=first["naive_close"].to_numpy(float),
        forecasts={
            key: result.forecasts["predicted_close"].to_numpy(float) for key, result in results.items()
        },
        horizon=any_result.horizon,
        start=first["date"].iloc[0].date(),
        end=first["date"].iloc[-1].date(),
    )


def best_candidate(results: dict[str, BacktestResult]) -> BacktestResult:
    """The lowest RMSE on the common window; ties go to the simpler (earlier listed) model."""
    return min(results.values(), key=lambda result: result.metrics["rmse"])


def describe(result: BacktestResult) -> dict[str, Any]:
    return {"spec": result.spec.key(), **result.metrics}
