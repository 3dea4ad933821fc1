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

INPUT_COLUMNS = [*FEATURE_COLUMNS, "close"]
OUTPUT_COLUMNS = ["predicted_close", "lower", "upper"]


class ForecastModel(PythonModel):
    def __init__(self, forecaster: Any, spec_key: str, kind: str, half_width: float, level: float):
        self.forecaster = forecaster
        self.spec_key = spec_key
        self.kind = kind
        self.half_width = half_width
        self.level = level

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return forecast_frame(self.forecaster, self.half_width, model_input)


def forecast_frame(forecaster: Any, half_width: float, rows: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in INPUT_COLUMNS if column not in rows.columns]
    if missing:
        raise ValueError(f"input lacks column(s): {', '.join(missing)}")
    log_return = forecaster.predict(rows[FEATURE_COLUMNS])
    close = rows["close"].to_numpy(float)
    return pd.DataFrame(
        {
            "predicted_close": close * np.exp(log_return),
            "lower": close * np.exp(log_return - half_width),
            "upper": close * np.exp(log_return + half_width),
        }
    )
