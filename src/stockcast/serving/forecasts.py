"""Serving a forecast: online features (or what-if closes) -> champion -> log -> answer."""

from __future__ import annotations

import uuid
from datetime import date

import pandas as pd
from fastapi import HTTPException

from stockcast.serving.schemas import ForecastResponse, Interval, ModelRef
from stockcast.serving.state import LoadedChampion, ServingState


def champion_for(state: ServingState, ticker: str) -> LoadedChampion:
    loaded = state.champions.get(ticker)
    if loaded is None:
        served = ", ".join(sorted(state.champions.versions())) or "none"
        raise HTTPException(404, f"unknown ticker {ticker}; served tickers: {served}")
    return loaded


def online_features(state: ServingState, ticker: str) -> pd.Series:
    from stockcast.features.feature_store import TTL
    from stockcast.forecasting.predict import (
        ForecastUnavailableError,
        StaleFeaturesError,
        check_freshness,
        online_row,
    )

    context = state.context
    try:
        row = online_row(context.feature_store.online([ticker]), ticker)
        check_freshness(ticker, row["date"].date(), context.store.latest_price_date(ticker), TTL)
    except StaleFeaturesError as error:
        raise HTTPException(503, str(error)) from error
    except ForecastUnavailableError as error:
        raise HTTPException(404, str(error)) from error
    return row


def what_if_features(ticker: str, closes: list[float], as_of: date) -> pd.Series:
    """Feature row computed from hypothetical closes ending at ``as_of``, by the same code
    that builds training features. Without highs, lows and volumes, the range and volume
    features take their neutral values."""
    from stockcast.calendars import calendar_for
    from stockcast.features.build import build_features

    sessions = calendar_for(ticker).sessions_window(pd.Timestamp(as_of), -len(closes))
    bars = pd.DataFrame(
        {
            "ticker": ticker,
            "date": pd.DatetimeIndex(sessions).tz_localize(None),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": float("nan"),
            "dividends": 0.0,
        }
    )
    return build_features(bars).iloc[-1]


def forecast_and_log(state: ServingState, ticker: str, row: pd.Series, origin: str) -> ForecastResponse:
    """Forecast with the ticker's champion and log it before answering; a forecast that cannot
    be logged is not served (503)."""
    from sqlalchemy.exc import SQLAlchemyError

    from stockcast.forecasting.predict import feature_values, make_forecast

    loaded = champion_for(state, ticker)
    forecast = make_forecast(ticker, row, loaded.model, loaded.name, loaded.version)
    request_id = uuid.uuid4().hex
    try:
        state.context.store.log_forecasts([forecast.record(request_id, origin, feature_values(row))])
    except SQLAlchemyError as error:
        raise HTTPException(
            503, "the forecast could not be logged, so it is not served; try again"
        ) from error
    state.metrics.forecasts.labels(ticker, loaded.version, origin).inc()
    return ForecastResponse(
        ticker=ticker,
        as_of=forecast.as_of,
        target_date=forecast.target_date,
        predicted_close=forecast.predicted_close,
        interval=Interval(lower=forecast.lower, upper=forecast.upper, level=forecast.level),
        model=ModelRef(name=forecast.model_name, version=forecast.model_version, kind=forecast.model_kind),
        request_id=request_id,
    )
