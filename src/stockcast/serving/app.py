"""The HTTP API. Champions and the feature store are opened once, in the lifespan; each
forecast reads the ticker's online features and is logged before it is answered."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from stockcast.features.build import MIN_HISTORY
from stockcast.settings import Settings, load_settings

log = logging.getLogger(__name__)


class Interval(BaseModel):
    lower: float
    upper: float
    level: float = Field(examples=[0.9])


class ModelRef(BaseModel):
    name: str = Field(examples=["stockcast-AAPL"])
    version: str = Field(examples=["3"])
    kind: str = Field(examples=["ridge"])


class ForecastResponse(BaseModel):
    ticker: str = Field(examples=["AAPL"])
    as_of: date = Field(description="Date of the bar the features describe.")
    target_date: date = Field(description="The session whose close is forecast.")
    predicted_close: float
    interval: Interval
    model: ModelRef
    request_id: str


class ForecastRequest(BaseModel):
    ticker: str = Field(examples=["AAPL"], min_length=1, max_length=32)
    recent_prices: list[float] | None = Field(
        default=None,
        description=(
            f"What-if: the most recent closes, oldest first (at least {MIN_HISTORY}); features are "
            "computed from them by the same code as training, ending at the ticker's current as-of date."
        ),
    )

    @field_validator("recent_prices")
    @classmethod
    def _enough_positive_prices(cls, prices: list[float] | None) -> list[float] | None:
        if prices is None:
            return None
        if len(prices) < MIN_HISTORY:
            raise ValueError(f"recent_prices needs at least {MIN_HISTORY} closes, got {len(prices)}")
        if any(not price > 0 for price in prices):
            raise ValueError("recent_prices must all be positive numbers")
        return prices


class Health(BaseModel):
    status: str
    champions: dict[str, str]
    problems: list[str] = Field(default_factory=list)


@dataclass
class LoadedChampion:
    name: str
    version: str
    model: Any


@dataclass
class ServingState:
    context: Any
    champions: dict[str, LoadedChampion] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def serving_state(request: Request) -> ServingState:
    return request.app.state.serving


State = Annotated[ServingState, Depends(serving_state)]


def load_champions(state: ServingState, tickers: list[str]) -> None:
    registry = state.context.registry
    for ticker in tickers:
        champion = registry.champion(ticker)
        if champion is None:
            state.problems.append(f"{ticker}: no champion in the registry")
            continue
        state.champions[ticker] = LoadedChampion(
            champion.name, champion.version, registry.load(ticker, champion.version)
        )


def _champion_for(state: ServingState, ticker: str) -> LoadedChampion:
    loaded = state.champions.get(ticker)
    if loaded is None:
        served = ", ".join(sorted(state.champions)) or "none"
        raise HTTPException(404, f"unknown ticker {ticker}; served tickers: {served}")
    return loaded


def _online_row(state: ServingState, ticker: str) -> pd.Series:
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


def _what_if_row(ticker: str, closes: list[float], as_of: date) -> pd.Series:
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


def _forecast_and_log(state: ServingState, ticker: str, row: pd.Series, origin: str) -> ForecastResponse:
    from stockcast.forecasting.predict import feature_values, make_forecast

    loaded = state.champions[ticker]
    forecast = make_forecast(ticker, row, loaded.model, loaded.name, loaded.version)
    request_id = uuid.uuid4().hex
    state.context.store.log_forecasts([forecast.record(request_id, origin, feature_values(row))])
    return ForecastResponse(
        ticker=ticker,
        as_of=forecast.as_of,
        target_date=forecast.target_date,
        predicted_close=forecast.predicted_close,
        interval=Interval(lower=forecast.lower, upper=forecast.upper, level=forecast.level),
        model=ModelRef(name=forecast.model_name, version=forecast.model_version, kind=forecast.model_kind),
        request_id=request_id,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from stockcast.context import Context

        context = Context(settings or load_settings())
        state = ServingState(context)
        try:
            context.store.ping()
        except Exception as error:
            state.problems.append(f"store: {error}")
        else:
            load_champions(state, context.settings.tickers)
            _ = context.feature_store.store  # open the feature registry before the first request
        app.state.serving = state
        yield
        context.store.dispose()

    app = FastAPI(
        title="stockcast",
        summary="Next-trading-day close forecasts with prediction intervals.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health(state: State) -> Any:
        """200 when the store answers and at least one champion is loaded; 503 with why."""
        problems = list(state.problems)
        try:
            state.context.store.ping()
        except Exception as error:
            problems.append(f"store: {error}")
        champions = {ticker: loaded.version for ticker, loaded in state.champions.items()}
        healthy = bool(champions) and not any(problem.startswith("store") for problem in problems)
        body = Health(status="ok" if healthy else "unavailable", champions=champions, problems=problems)
        return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)

    @app.get("/predict/{ticker}", response_model=ForecastResponse, responses={404: {}, 503: {}})
    def predict(ticker: str, state: State) -> ForecastResponse:
        """Forecast the next session's close from the ticker's online features."""
        symbol = ticker.upper()
        _champion_for(state, symbol)
        return _forecast_and_log(state, symbol, _online_row(state, symbol), "api")

    @app.post("/predict", response_model=ForecastResponse, responses={404: {}, 422: {}, 503: {}})
    def predict_posted(body: ForecastRequest, state: State) -> ForecastResponse:
        """Forecast from the online features, or, given ``recent_prices``, from features
        computed from those closes (a what-if that does not touch the feature store)."""
        symbol = body.ticker.upper()
        _champion_for(state, symbol)
        online = _online_row(state, symbol)
        if body.recent_prices is None:
            return _forecast_and_log(state, symbol, online, "api")
        row = _what_if_row(symbol, body.recent_prices, online["date"].date())
        return _forecast_and_log(state, symbol, row, "what-if")

    return app
