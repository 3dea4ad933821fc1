"""Forecast routes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from stockcast.serving.deps import RATE_LIMITED, READ_ACCESS, StateDep
from stockcast.serving.forecasts import Prepared, champion_for, serve, what_if
from stockcast.serving.schemas import (
    BatchItem,
    BatchRequest,
    BatchResponse,
    ErrorBody,
    ForecastRequest,
    ForecastResponse,
)
from stockcast.serving.state import ServingState

ERRORS: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "Rate limit exceeded; see Retry-After."},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["forecasts"], dependencies=READ_ACCESS + RATE_LIMITED)

    async def prepared_for(state: ServingState, ticker: str) -> Prepared:
        found = state.forecasts.lookup(ticker, champion_for(state, ticker))
        if isinstance(found, Prepared):
            return found
        return await asyncio.wrap_future(found)

    @router.get("/predict/{ticker}", response_model=ForecastResponse, responses=ERRORS)
    async def predict(ticker: str, state: StateDep) -> ForecastResponse:
        """Forecast the next session's close from the ticker's online features."""
        prepared = await prepared_for(state, ticker.upper())
        return (await serve(state, [prepared], "api"))[0]

    @router.post("/predict", response_model=ForecastResponse, responses=ERRORS)
    async def predict_posted(body: ForecastRequest, state: StateDep) -> ForecastResponse:
        """Forecast from the online features, or, given ``recent_prices``, from features computed
        from those closes (a what-if that does not touch the feature store)."""
        symbol = body.ticker.upper()
        if body.recent_prices is None:
            return (await serve(state, [await prepared_for(state, symbol)], "api"))[0]
        prepared = await run_in_threadpool(
            what_if, state, symbol, champion_for(state, symbol), body.recent_prices
        )
        return (await serve(state, [prepared], "what-if"))[0]

    @router.post("/predict/batch", response_model=BatchResponse, responses=ERRORS)
    async def predict_batch(body: BatchRequest, state: StateDep) -> BatchResponse:
        """Forecast many tickers; each gets its forecast or its own error. All forecasts of a
        batch are logged in one transaction before the answer."""
        limit = state.context.settings.batch_max_tickers
        if len(body.tickers) > limit:
            raise HTTPException(422, f"at most {limit} tickers per batch, got {len(body.tickers)}")
        outcomes: dict[str, Prepared | ErrorBody] = {}
        for ticker in dict.fromkeys(symbol.upper() for symbol in body.tickers):
            try:
                outcomes[ticker] = await prepared_for(state, ticker)
            except HTTPException as error:
                code = {404: "not_found", 503: "unavailable"}.get(error.status_code, "error")
                outcomes[ticker] = ErrorBody(code=code, message=str(error.detail))
        ready = [item for item in outcomes.values() if isinstance(item, Prepared)]
        answers = {answer.ticker: answer for answer in await serve(state, ready, "api")}
        return BatchResponse(
            results=[
                BatchItem(ticker=ticker, error=outcome)
                if isinstance(outcome, ErrorBody)
                else BatchItem(ticker=ticker, forecast=answers[ticker])
                for ticker, outcome in outcomes.items()
            ]
        )

    return router
