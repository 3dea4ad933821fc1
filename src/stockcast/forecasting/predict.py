"""Forecasting: the champion of a ticker applied to its online feature vector."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from stockcast.features.build import FEATURE_COLUMNS


class ForecastUnavailableError(LookupError):
    """No forecast can be made for a ticker; the message says why."""


class StaleFeaturesError(ForecastUnavailableError):
    """The features are older than the feature view's TTL allows."""


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
    # (level, lower, upper) at every level the model was calibrated for, narrowest first.
    intervals: tuple[tuple[float, float, float], ...] = ()
    horizon: int = 1  # sessions ahead: ``target_date`` is that many sessions after ``as_of``

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
            "last_close": self.last_close,
            "lower": self.lower,
            "upper": self.upper,
            "level": self.level,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_kind": self.model_kind,
            "origin": origin,
            "features": features,
            "intervals": json.dumps([list(each) for each in self.intervals]) if self.intervals else None,
            "horizon": self.horizon,
            "created_at": datetime.now(UTC),
        }


def batch_request_id(forecast: Forecast) -> str:
    """Deterministic, so the daily job logs each (ticker, day, model version) once; the model's
    name differs by horizon (``model_name_for``)."""
    return (
        f"batch:{forecast.ticker}:{forecast.as_of.isoformat()}:{forecast.model_name}:{forecast.model_version}"
    )


def online_rows(online: pd.DataFrame) -> dict[str, pd.Series | ForecastUnavailableError]:
    """Each ticker's online vector with its as-of date (the exchange-local session of its
    stamp), or why it has none: one pass over the online store's answer for many tickers."""
    from stockcast.calendars import exchange_today

    rows: dict[str, pd.Series | ForecastUnavailableError] = {}
    for record in online.to_dict("records"):
        ticker = str(record["ticker"])
        if ticker in rows:
            continue
        if pd.isna(record["event_timestamp"]):
            rows[ticker] = ForecastUnavailableError(
                f"no online features for {ticker}; run `stockcast features`"
            )
            continue
        if any(pd.isna(record[column]) for column in FEATURE_COLUMNS):
            rows[ticker] = ForecastUnavailableError(f"incomplete online features for {ticker}")
            continue
        record["date"] = pd.Timestamp(exchange_today(ticker, record["event_timestamp"]))
        rows[ticker] = pd.Series(record, dtype=object)
    return rows


def row_of(rows: dict[str, pd.Series | ForecastUnavailableError], ticker: str) -> pd.Series:
    """A ticker's row of ``online_rows``; raises why it has none."""
    row = rows.get(ticker)
    if row is None:
        raise ForecastUnavailableError(f"no online features for {ticker}; run `stockcast features`")
    if isinstance(row, ForecastUnavailableError):
        raise row
    return row


def check_freshness(ticker: str, as_of: date, newest_bar: date | None, ttl: timedelta) -> None:
    """Refuse features that lag the newest stored bar by more than the TTL: the forecast would
    answer for a day long gone while the data to do better is already in."""
    if newest_bar is not None and newest_bar - as_of > ttl:
        raise StaleFeaturesError(
            f"online features of {ticker} are as of {as_of}, more than {ttl.days} days behind its "
            f"newest bar ({newest_bar}); run `stockcast features` to materialize them"
        )


def make_forecast(ticker: str, row: pd.Series, model: Any, model_name: str, model_version: str) -> Forecast:
    """Apply a packaged model (``ForecastModel``) to one complete feature row; its target is as
    many sessions of the ticker's exchange after the row's day as the model's horizon."""
    # Imported here: a served ``Forecast`` unpickles without MLflow or the exchange calendars.
    from stockcast.calendars import session_after
    from stockcast.modeling.intervals import level_key
    from stockcast.registry.pyfunc_model import INPUT_COLUMNS, bounds_of, forecast_frame, horizon_of

    frame = pd.DataFrame([row[INPUT_COLUMNS].astype(float).to_numpy()], columns=INPUT_COLUMNS)
    bounds = bounds_of(model)
    answer = forecast_frame(model.forecaster, bounds, model.level, frame).iloc[0]
    intervals = tuple(
        (float(level), float(answer[f"lower_{level_key(level)}"]), float(answer[f"upper_{level_key(level)}"]))
        for level in sorted(bounds)
    )
    as_of = pd.Timestamp(row["date"]).date()
    horizon = horizon_of(model)
    return Forecast(
        ticker=ticker,
        as_of=as_of,
        target_date=session_after(ticker, as_of, horizon),
        last_close=float(row["close"]),
        predicted_close=float(answer["predicted_close"]),
        lower=float(answer["lower"]),
        upper=float(answer["upper"]),
        level=float(model.level),
        model_name=model_name,
        model_version=model_version,
        model_kind=model.kind,
        intervals=intervals,
        horizon=horizon,
    )


def feature_values(row: pd.Series) -> dict[str, float]:
    return {column: float(row[column]) for column in FEATURE_COLUMNS}
