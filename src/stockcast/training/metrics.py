"""Forecast accuracy metrics: pure functions of actual and predicted closes."""

from __future__ import annotations

import numpy as np
import pandas as pd


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


def score_forecasts(frame: pd.DataFrame) -> dict[str, float]:
    """Metrics of a frame with ``close`` (at the origin), ``actual_close``, ``predicted_close``,
    ``naive_close``, ``lower`` and ``upper``."""
    actual = frame["actual_close"].to_numpy(float)
    predicted = frame["predicted_close"].to_numpy(float)
    naive_rmse = rmse(actual, frame["naive_close"].to_numpy(float))
    model_rmse = rmse(actual, predicted)
    return {
        "mae": mae(actual, predicted),
        "rmse": model_rmse,
        "mape_pct": mape_pct(actual, predicted),
        "directional_accuracy": directional_accuracy(frame["close"].to_numpy(float), actual, predicted),
        "naive_rmse": naive_rmse,
        "skill_vs_naive": skill(model_rmse, naive_rmse),
        "coverage": coverage(actual, frame["lower"].to_numpy(float), frame["upper"].to_numpy(float)),
        "n_forecasts": float(len(frame)),
    }
