"""Forecast accuracy metrics: pure functions of actual and predicted closes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stockcast.modeling.intervals import level_key


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - predicted)))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def mape_pct(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs((actual - predicted) / actual)) * 100.0)


def directional_accuracy(last_close: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> float:
    """Share of calls whose predicted move has the sign of the actual move.

    A forecast of no move makes no call; a model that never calls one (the naive forecast)
    has no directional accuracy, reported as NaN rather than a flattering or unfair number.
    """
    predicted_move = np.sign(predicted - last_close)
    actual_move = np.sign(actual - last_close)
    called = predicted_move != 0
    if not called.any():
        return float("nan")
    return float(np.mean(predicted_move[called] == actual_move[called]))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((actual >= lower) & (actual <= upper)))


def skill(model_rmse: float, naive_rmse: float) -> float:
    """1 - RMSE/RMSE_naive: positive when the model beats tomorrow = today."""
    if naive_rmse <= 0:
        return float("nan")
    return 1.0 - model_rmse / naive_rmse


def score_forecasts(
    frame: pd.DataFrame,
    levels: Sequence[float] = (),
    insample_mse: float = float("nan"),
    insample_mae: float = float("nan"),
    horizon: int = 1,
) -> dict[str, float]:
    """Metrics of a frame with ``close`` (at the origin), ``actual_close``, ``predicted_close``,
    ``naive_close``, ``lower`` and ``upper`` (the configured level), and ``lower_{k}`` /
    ``upper_{k}`` for each of ``levels``; the in-sample naive scales make the scale-free ones.

    At horizon h > 1 consecutive outcomes overlap (they share h - 1 daily moves), so the
    direction test reads every h-th origin only: outcomes that share no day, as its
    independence assumption needs. The point figures use every origin."""
    from stockcast.modeling.significance import pesaran_timmermann

    actual = frame["actual_close"].to_numpy(float)
    predicted = frame["predicted_close"].to_numpy(float)
    last_close = frame["close"].to_numpy(float)
    naive_rmse = rmse(actual, frame["naive_close"].to_numpy(float))
    model_rmse = rmse(actual, predicted)
    apart = slice(None, None, horizon)  # non-overlapping outcomes
    direction = pesaran_timmermann(predicted[apart] - last_close[apart], actual[apart] - last_close[apart])
    scores = {
        "mae": mae(actual, predicted),
        "rmse": model_rmse,
        "mape_pct": mape_pct(actual, predicted),
        "directional_accuracy": directional_accuracy(last_close, actual, predicted),
        "direction_base_rate": direction.expected_hit_rate,
        "direction_p_value": direction.p_value,
        "naive_rmse": naive_rmse,
        "skill_vs_naive": skill(model_rmse, naive_rmse),
        "coverage": coverage(actual, frame["lower"].to_numpy(float), frame["upper"].to_numpy(float)),
        "n_forecasts": float(len(frame)),
    }
    if levels:
        scores |= interval_scores(frame, levels, insample_mse, insample_mae)
    return scores


def _positive_finite(value: float) -> bool:
    return bool(np.isfinite(value) and value > 0)


def insample_naive_scales(history_close: np.ndarray) -> tuple[float, float]:
    """(mean squared, mean absolute) one-step change of a history of closes, in price² and price.

    These are the in-sample errors of the naive forecast on the training history, the
    denominators of ``rmsse`` and of ``msis`` / the scaled pinball loss. Fewer than two closes
    have no change to measure and give (NaN, NaN).
    """
    closes = np.asarray(history_close, dtype=float)
    if len(closes) < 2:
        return float("nan"), float("nan")
    changes = np.diff(closes)
    return float(np.mean(changes**2)), float(np.mean(np.abs(changes)))


def rmsse(actual: np.ndarray, predicted: np.ndarray, insample_naive_mse: float) -> float:
    """Root mean squared scaled error: RMSE / sqrt(in-sample naive MSE), unitless (M5's scaling).

    About 1 means the forecast errs out of sample as much as the naive forecast did in sample;
    below 1 is better. NaN when the scale is not positive and finite (a flat or too short
    history), where any ratio would be meaningless.
    """
    if not _positive_finite(insample_naive_mse):
        return float("nan")
    return rmse(np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)) / float(
        np.sqrt(insample_naive_mse)
    )


def pinball_loss(actual: np.ndarray, quantile_forecast: np.ndarray, tau: float) -> float:
    """Mean pinball (quantile) loss, in the units of ``actual``, of a forecast of the tau-quantile.

    An actual above the forecast costs tau per unit, one below it costs (1 - tau) per unit; the
    expected loss is smallest at the true tau-quantile, so a lower bound meant to be the
    5% quantile is rewarded for being exactly that, not merely for being low.
    """
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must be strictly between 0 and 1, got {tau!r}")
    error = np.asarray(actual, dtype=float) - np.asarray(quantile_forecast, dtype=float)
    return float(np.mean(np.maximum(tau * error, (tau - 1.0) * error)))


def interval_score(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> float:
    """Mean interval (Winkler) score of central ``level`` intervals, in the units of ``actual``.

    Per forecast: the width (upper - lower), plus (2 / alpha) times the distance by which the
    actual falls below the lower or above the upper bound, alpha = 1 - level. It rewards narrow
    intervals and punishes misses in proportion to their size, so an interval cannot score well
    by being wide (as with coverage alone) or narrow (as with width alone). Lower is better; an
    infinite bound gives an infinite score.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    alpha = 1.0 - level
    y = np.asarray(actual, dtype=float)
    low = np.asarray(lower, dtype=float)
    high = np.asarray(upper, dtype=float)
    below = np.where(y < low, low - y, 0.0)
    above = np.where(y > high, y - high, 0.0)
    return float(np.mean((high - low) + (2.0 / alpha) * (below + above)))


def msis(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float, insample_naive_mae: float
) -> float:
    """Mean scaled interval score: ``interval_score`` / in-sample naive MAE, unitless.

    M4's MSIS with seasonality 1: the denominator is the mean absolute one-step change of the
    ticker's history, so scores are comparable across tickers and price levels. NaN when the
    scale is not positive and finite.
    """
    if not _positive_finite(insample_naive_mae):
        return float("nan")
    return interval_score(actual, lower, upper, level) / insample_naive_mae


def interval_scores(
    frame: pd.DataFrame, levels: Sequence[float], insample_mse: float, insample_mae: float
) -> dict[str, float]:
    """Coverage and scale-free scores of the intervals at each level in ``frame``.

    ``frame`` has ``actual_close`` and, for each level L with key k = ``level_key(L)``, the
    columns ``lower_{k}`` and ``upper_{k}`` (closes). ``insample_mse`` and ``insample_mae`` are
    ``insample_naive_scales`` of the ticker's history. Per level the keys are:

    - ``coverage_{k}``: share of actuals inside [lower, upper];
    - ``scaled_pinball_{k}``: the mean of the pinball loss of the lower bound at tau = (1 - L) / 2
      and of the upper bound at tau = (1 + L) / 2, divided by ``insample_mae`` so that it is
      unitless and comparable across tickers (NaN when that scale is not positive and finite);
    - ``msis_{k}``: ``msis`` at L.

    ``mean_scaled_pinball`` averages ``scaled_pinball_{k}`` over the levels, a single summary of
    the interval forecasts at all levels. When ``frame`` also has ``predicted_close``, ``rmsse``
    of the point forecast is included, which is what ``insample_mse`` is for.
    """
    keys = [level_key(level) for level in levels]
    if len(set(keys)) != len(keys):
        raise ValueError(f"levels {list(levels)!r} do not have distinct column keys {keys!r}")
    actual = frame["actual_close"].to_numpy(float)
    scale_ok = _positive_finite(insample_mae)
    scores: dict[str, float] = {}
    pinballs: list[float] = []
    for level, key in zip(levels, keys, strict=True):
        lower = frame[f"lower_{key}"].to_numpy(float)
        upper = frame[f"upper_{key}"].to_numpy(float)
        tail = (1.0 - level) / 2.0
        raw_pinball = (pinball_loss(actual, lower, tail) + pinball_loss(actual, upper, 1.0 - tail)) / 2.0
        scaled_pinball = raw_pinball / insample_mae if scale_ok else float("nan")
        pinballs.append(scaled_pinball)
        scores[f"coverage_{key}"] = coverage(actual, lower, upper)
        scores[f"scaled_pinball_{key}"] = scaled_pinball
        scores[f"msis_{key}"] = msis(actual, lower, upper, level, insample_mae)
    scores["mean_scaled_pinball"] = float(np.mean(pinballs)) if pinballs else float("nan")
    if "predicted_close" in frame:
        scores["rmsse"] = rmsse(actual, frame["predicted_close"].to_numpy(float), insample_mse)
    return scores
