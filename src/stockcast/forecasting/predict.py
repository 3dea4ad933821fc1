"""Forecasting: the champion of a ticker applied to its newest feature row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from stockcast.calendars import next_session
from stockcast.features.build import FEATURE_COLUMNS
from stockcast.registry.pyfunc_model import INPUT_COLUMNS, forecast_frame


class ForecastUnavailableError(LookupError):
    """No forecast can be made for a ticker; the message says why."""


@dataclass(frozen=True)
class Forecast:
    ticker: str
    as_of: date
    target_date: date
    last_close: float
    predicted_close: float
    lower: float
    upper: float
    level: float
    model_name: str
    model_version: str
    model_kind: str

    def record(
        self, request_id: str, origin: str, features: dict[str, float] | None = None
    ) -> dict[str, Any]:
        """The row the forecast log keeps."""
        return {
            "request_id": request_id,
            "ticker": self.ticker,
            "as_of": self.as_of,
            "target_date": self.target_date,
            "predicted_close": self.predicted_close,
            "lower": self.lower,
            "upper": self.upper,
            "level": self.level,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_kind": self.model_kind,
            "origin": origin,
            "features": features,
            "created_at": datetime.now(UTC),
        }


def batch_request_id(forecast: Forecast) -> str:
    """Deterministic, so the daily job logs each (ticker, day, model version) once."""
    return (
        f"batch:{forecast.ticker}:{forecast.as_of.isoformat()}:{forecast.model_name}:{forecast.model_version}"
    )


def make_forecast(ticker: str, row: pd.Series, model: Any, model_name: str, model_version: str) -> Forecast:
    """Apply a packaged model (``ForecastModel``) to one complete feature row."""
    frame = pd.DataFrame([row[INPUT_COLUMNS].astype(float).to_numpy()], columns=INPUT_COLUMNS)
    answer = forecast_frame(model.forecaster, model.half_width, frame).iloc[0]
    as_of = pd.Timestamp(row["date"]).date()
    return Forecast(
        ticker=ticker,
        as_of=as_of,
        target_date=next_session(ticker, as_of),
        last_close=float(row["close"]),
        predicted_close=float(answer["predicted_close"]),
        lower=float(answer["lower"]),
        upper=float(answer["upper"]),
        level=float(model.level),
        model_name=model_name,
        model_version=model_version,
        model_kind=model.kind,
    )


def feature_values(row: pd.Series) -> dict[str, float]:
    return {column: float(row[column]) for column in FEATURE_COLUMNS}
