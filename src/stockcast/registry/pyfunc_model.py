"""The packaged forecaster: what the registry stores and the API loads.

It carries the fitted model, the feature columns it reads and the conformal half-width of its
interval, so that a feature row and today's close are all it needs to answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from stockcast.features.build import FEATURE_COLUMNS
from stockcast.training.intervals import interval_scale

INPUT_COLUMNS = [*FEATURE_COLUMNS, "close"]
OUTPUT_COLUMNS = ["predicted_close", "lower", "upper"]


class ForecastModel(PythonModel):
    def __init__(self, forecaster: Any, spec_key: str, kind: str, interval_quantile: float, level: float):
        self.forecaster = forecaster
        self.spec_key = spec_key
        self.kind = kind
        self.interval_quantile = interval_quantile
        self.level = level

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return forecast_frame(self.forecaster, self.interval_quantile, model_input)


def forecast_frame(forecaster: Any, quantile: float, rows: pd.DataFrame) -> pd.DataFrame:
    """Point forecast and interval: ``quantile`` is the conformal quantile of volatility-scaled
    errors, so the interval widens and narrows with the row's recent volatility."""
    missing = [column for column in INPUT_COLUMNS if column not in rows.columns]
    if missing:
        raise ValueError(f"input lacks column(s): {', '.join(missing)}")
    log_return = forecaster.predict(rows[FEATURE_COLUMNS])
    close = rows["close"].to_numpy(float)
    spread = quantile * interval_scale(rows)
    return pd.DataFrame(
        {
            "predicted_close": close * np.exp(log_return),
            "lower": close * np.exp(log_return - spread),
            "upper": close * np.exp(log_return + spread),
        }
    )
