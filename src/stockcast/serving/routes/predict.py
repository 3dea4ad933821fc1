"""Forecast routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from stockcast.serving.deps import RATE_LIMITED, READ_ACCESS, StateDep
from stockcast.serving.forecasts import champion_for, forecast_and_log, online_features, what_if_features
from stockcast.serving.schemas import (
    BatchItem,
    BatchRequest,
    BatchResponse,
    ErrorBody,
    ForecastRequest,
    ForecastResponse,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "Rate limit exceeded; see Retry-After."},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["forecasts"], dependencies=READ_ACCESS + RATE_LIMITED)

    @router.get("/predict/{ticker}", response_model=ForecastResponse, responses=ERRORS)
    def predict(ticker: str, state: StateDep) -> ForecastResponse:
        """Forecast the next session's close from the ticker's online features."""
        symbol = ticker.upper()
        champion_for(state, symbol)
        return forecast_and_log(state, symbol, online_features(state, symbol), "api")

    @router.post("/predict", response_model=ForecastResponse, responses=ERRORS)
    def predict_posted(body: ForecastRequest, state: StateDep) -> ForecastResponse:
        """Forecast from the online features, or, given ``recent_prices``, from features computed
        from those closes (a what-if that does not touch the feature store)."""
        symbol = body.ticker.upper()
        champion_for(state, symbol)
        online = online_features(state, symbol)
        if body.recent_prices is None:
            return forecast_and_log(state, symbol, online, "api")
        row = what_if_features(symbol, body.recent_prices, online["date"].date())
        return forecast_and_log(state, symbol, row, "what-if")

    @router.post("/predict/batch", response_model=BatchResponse, responses=ERRORS)
    def predict_batch(body: BatchRequest, state: StateDep) -> BatchResponse:
        """Forecast many tickers; each gets its forecast or its own error."""
        limit = state.context.settings.batch_max_tickers
        if len(body.tickers) > limit:
            raise HTTPException(422, f"at most {limit} tickers per batch, got {len(body.tickers)}")
        results = []
        for ticker in dict.fromkeys(symbol.upper() for symbol in body.tickers):
            try:
                champion_for(state, ticker)
                forecast = forecast_and_log(state, ticker, online_features(state, ticker), "api")
            except HTTPException as error:
                code = {404: "not_found", 503: "unavailable"}.get(error.status_code, "error")
                results.append(
                    BatchItem(ticker=ticker, error=ErrorBody(code=code, message=str(error.detail)))
                )
                continue
            results.append(BatchItem(ticker=ticker, forecast=forecast))
        return BatchResponse(results=results)

    return router
