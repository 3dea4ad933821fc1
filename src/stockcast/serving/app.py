"""The HTTP API. Champions are loaded once, in the lifespan, never per request."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

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
    as_of: date
    target_date: date
    predicted_close: float
    interval: Interval
    model: ModelRef
    request_id: str


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
        """Forecast the next session's close of a ticker with its champion; the forecast is
        logged before it is returned."""
        from stockcast.features.build import build_features
        from stockcast.features.offline import latest_row
        from stockcast.forecasting.predict import feature_values, make_forecast

        symbol = ticker.upper()
        loaded = state.champions.get(symbol)
        if loaded is None:
            served = ", ".join(sorted(state.champions)) or "none"
            raise HTTPException(404, f"unknown ticker {symbol}; served tickers: {served}")
        bars = state.context.store.load_prices(tickers=[symbol])
        row = latest_row(build_features(bars), symbol)
        if row is None:
            raise HTTPException(503, f"no complete feature row for {symbol}'s newest bar")
        forecast = make_forecast(symbol, row, loaded.model, loaded.name, loaded.version)
        request_id = uuid.uuid4().hex
        state.context.store.log_forecasts([forecast.record(request_id, "api", feature_values(row))])
        return ForecastResponse(
            ticker=symbol,
            as_of=forecast.as_of,
            target_date=forecast.target_date,
            predicted_close=forecast.predicted_close,
            interval=Interval(lower=forecast.lower, upper=forecast.upper, level=forecast.level),
            model=ModelRef(
                name=forecast.model_name, version=forecast.model_version, kind=forecast.model_kind
            ),
            request_id=request_id,
        )

    return app
