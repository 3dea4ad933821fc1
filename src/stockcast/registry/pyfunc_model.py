"""The packaged forecaster: what the registry stores and the API loads.

It carries the fitted model, the feature columns it reads and the conformal bounds of its
intervals at each level, so that a feature row and today's close are all it needs to answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from stockcast.features.build import FEATURE_COLUMNS
from stockcast.modeling.intervals import interval_scale, level_key

INPUT_COLUMNS = [*FEATURE_COLUMNS, "close"]
OUTPUT_COLUMNS = ["predicted_close", "lower", "upper"]

# Per level, (lower, upper) quantiles of signed volatility-scaled errors.
IntervalBounds = dict[float, tuple[float, float]]


class ForecastModel(PythonModel):
    def __init__(
        self,
        forecaster: Any,
        spec_key: str,
        kind: str,
        interval_bounds: IntervalBounds,
        level: float,
        horizon: int = 1,
    ):
        self.forecaster = forecaster
        self.spec_key = spec_key
        self.kind = kind
        self.interval_bounds = dict(interval_bounds)
        self.level = level
        self.horizon = horizon  # sessions ahead; models packaged before horizons have none: 1

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return forecast_frame(self.forecaster, bounds_of(self), self.level, model_input)


def horizon_of(packaged: Any) -> int:
    """Sessions ahead a packaged model forecasts (1 for versions packaged before horizons)."""
    return int(getattr(packaged, "horizon", 1))


def bounds_of(packaged: Any) -> IntervalBounds:
    """The interval bounds of a packaged model. Versions registered before equal-tailed
    intervals carry one symmetric quantile at their level: it is that level's bounds."""
    bounds = getattr(packaged, "interval_bounds", None)
    if bounds:
        return dict(bounds)
    quantile = float(packaged.interval_quantile)
    return {float(packaged.level): (-quantile, quantile)}


def forecast_frame(forecaster: Any, bounds: IntervalBounds, level: float, rows: pd.DataFrame) -> pd.DataFrame:
    """Point forecast and intervals: ``lower`` / ``upper`` at ``level`` and ``lower_{k}`` /
    ``upper_{k}`` at every level of ``bounds``; each bound is a quantile of volatility-scaled
    errors, so the intervals widen and narrow with the row's recent volatility."""
    missing = [column for column in INPUT_COLUMNS if column not in rows.columns]
    if missing:
        raise ValueError(f"input lacks column(s): {', '.join(missing)}")
    log_return = forecaster.predict(rows[FEATURE_COLUMNS])
    close = rows["close"].to_numpy(float)
    scale = interval_scale(rows)
    columns = {"predicted_close": close * np.exp(log_return)}
    for each, (lower, upper) in sorted(bounds.items()):
        columns[f"lower_{level_key(each)}"] = close * np.exp(log_return + lower * scale)
        columns[f"upper_{level_key(each)}"] = close * np.exp(log_return + upper * scale)
    columns["lower"] = columns[f"lower_{level_key(level)}"]
    columns["upper"] = columns[f"upper_{level_key(level)}"]
    return pd.DataFrame(columns)
