"""Forecast routes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from stockcast.serving.deps import ForecastAccess, forecast_access
from stockcast.serving.forecasts import Prepared, Ready, champions_for, serve, serve_kept, what_if
from stockcast.serving.schemas import (
    HORIZON_QUERY,
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


_HORIZON = TypeAdapter(Annotated[int | None, Field(ge=1, le=60)])


def _horizon(request: Request) -> int | None:
    """The ``horizon`` query parameter as FastAPI reads a declared one (the last if repeated),
    or the same 422."""
    if not request.scope.get("query_string"):
        return None
    raw = request.query_params.get("horizon")
    if raw is None:
        return None
    try:
        return _HORIZON.validate_python(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**issue, "loc": ("query", "horizon", *issue["loc"])} for issue in error.errors()]
        ) from None


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["forecasts"])

    async def kept_for(state: ServingState, ticker: str, horizon: int | None) -> tuple[Ready, list[Prepared]]:
        """A ticker's kept forecasts, and those of every served horizon (or the one asked for)
        in them, shortest first."""
        champions, wanted = champions_for(state, ticker, horizon)
        found = state.forecasts.lookup(ticker, champions)  # all horizons: one entry per ticker
        ready = found if isinstance(found, Ready) else await asyncio.wrap_future(found)
        return ready, ready.pick(wanted, every=horizon is None)

    async def answer_for(state: ServingState, ticker: str, horizon: int | None) -> list[Prepared]:
        return (await kept_for(state, ticker, horizon))[1]

    async def predict(
        ticker: str,
        state: ForecastAccess,
        horizon: Annotated[int | None, Query(ge=1, le=60, description=HORIZON_QUERY)] = None,
    ) -> Response:
        """Forecast the ticker's close at every served horizon (``forecasts``) from its online
        features; the top-level fields are the shortest horizon's (the next session by default).
        Every forecast answered is logged first."""
        ready, answer = await kept_for(state, ticker.upper(), horizon)
        # The answer as ``ForecastResponse`` writes it, rendered once per kept forecast.
        return await serve_kept(state, ready, answer, "api")

    class KeptForecastRoute(APIRoute):
        """GET /predict/{ticker}, the hottest route: its parameters are declared above like any
        route's, for the contract (OpenAPI) and its documentation, and read here by the handler
        itself, checked by the same pydantic rule. FastAPI's per-request dependency solving
        took a third of this route's time for one path and one query parameter."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            async def handle(request: Request) -> Response:
                state = await forecast_access(request)
                return await predict(request.path_params["ticker"], state, _horizon(request))

            return handle

    router.add_api_route(
        "/predict/{ticker}",
        predict,
        methods=["GET"],
        response_model=ForecastResponse,
        responses=ERRORS,
        route_class_override=KeptForecastRoute,
    )

    @router.post("/predict", response_model=ForecastResponse, responses=ERRORS)
    async def predict_posted(body: ForecastRequest, state: ForecastAccess) -> ForecastResponse:
        """Forecast from the online features, or, given ``recent_prices``, from features computed
        from those closes (a what-if that does not touch the feature store)."""
        symbol = body.ticker.upper()
        if body.recent_prices is None:
            return (await serve(state, [await answer_for(state, symbol, body.horizon)], "api"))[0]
        champions, wanted = champions_for(state, symbol, body.horizon)
        chosen = {horizon: champions[horizon] for horizon in wanted}
        ready = await run_in_threadpool(what_if, state, symbol, chosen, body.recent_prices)
        return (await serve(state, [ready.pick(wanted)], "what-if"))[0]

    @router.post("/predict/batch", response_model=BatchResponse, responses=ERRORS)
    async def predict_batch(body: BatchRequest, state: ForecastAccess) -> BatchResponse:
        """Forecast many tickers; each gets its forecasts or its own error. All forecasts of a
        batch are logged in one transaction before the answer."""
        limit = state.context.settings.batch_max_tickers
        if len(body.tickers) > limit:
            raise HTTPException(422, f"at most {limit} tickers per batch, got {len(body.tickers)}")
        outcomes: dict[str, list[Prepared] | ErrorBody] = {}
        for ticker in dict.fromkeys(symbol.upper() for symbol in body.tickers):
            try:
                outcomes[ticker] = await answer_for(state, ticker, body.horizon)
            except HTTPException as error:
                code = {404: "not_found", 503: "unavailable"}.get(error.status_code, "error")
                outcomes[ticker] = ErrorBody(code=code, message=str(error.detail))
        ready = [item for item in outcomes.values() if not isinstance(item, ErrorBody)]
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
