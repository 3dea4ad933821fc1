"""Live scale-free and probabilistic scores of the forecasts a ticker was served (pure).

The same figures as the backtest's, over the last ``window`` scored forecasts of the forecast
log: RMSSE and the interval scores are divided by the naive forecast's one-step errors over the
closes before the window, so they compare across tickers and with the backtest; coverage is
counted per level from each forecast's logged intervals.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from stockcast.modeling.intervals import level_key
from stockcast.modeling.significance import pesaran_timmermann
from stockcast.training.metrics import insample_naive_scales, interval_scores


def _bounds(row: Any) -> dict[float, tuple[float, float]]:
    """A logged forecast's intervals by level; forecasts logged before multi-level intervals
    have only their configured level's."""
    logged = row.get("intervals")
    if isinstance(logged, str) and logged:
        return {float(level): (float(lower), float(upper)) for level, lower, upper in json.loads(logged)}
    return {float(row["level"]): (float(row["lower"]), float(row["upper"]))}


def live_scores(
    outcomes: pd.DataFrame, history_close: np.ndarray, window: int, horizon: int = 1
) -> dict[str, float]:
    """Scores of the last ``window`` scored forecasts (one per day, oldest first, with
    ``actual_close``, ``predicted_close``, ``last_close`` and their intervals); ``history_close``
    are the closes before the first of them, for the in-sample scales. Empty with fewer than
    ``window`` scored forecasts. Only finite figures are returned. At horizon h > 1 the
    direction test reads every h-th forecast, whose outcomes share no day."""
    recent = outcomes.tail(window)
    if len(recent) < window or window == 0:
        return {}
    # Only the columns the intervals need: a logged row also carries its features.
    columns = [column for column in ("intervals", "level", "lower", "upper") if column in recent.columns]
    bounds = [_bounds(row) for row in recent[columns].to_dict(orient="records")]
    levels = sorted(set.intersection(*(set(each) for each in bounds)))
    frame = pd.DataFrame(
        {
            "actual_close": recent["actual_close"].to_numpy(float),
            "predicted_close": recent["predicted_close"].to_numpy(float),
        }
    )
    for level in levels:
        frame[f"lower_{level_key(level)}"] = [each[level][0] for each in bounds]
        frame[f"upper_{level_key(level)}"] = [each[level][1] for each in bounds]
    insample_mse, insample_mae = insample_naive_scales(np.asarray(history_close, float))
    scores = interval_scores(frame, levels, insample_mse, insample_mae)
    last_close = recent["last_close"].to_numpy(float)
    apart = slice(None, None, -horizon)  # the newest forecast and every h-th before it
    direction = pesaran_timmermann(
        (frame["predicted_close"].to_numpy(float) - last_close)[apart],
        (frame["actual_close"].to_numpy(float) - last_close)[apart],
    )
    scores["direction_p_value"] = direction.p_value
    scores["direction_base_rate"] = direction.expected_hit_rate
    return {key: float(value) for key, value in scores.items() if math.isfinite(value)}
