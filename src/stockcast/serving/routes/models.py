"""Champions and challengers per ticker, and rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from stockcast.serving.deps import KEY_REQUIRED, READ_ACCESS, StateDep
from stockcast.serving.schemas import HORIZON_QUERY, ErrorBody, HorizonModels, RollbackResponse, TickerModels
from stockcast.serving.state import ServingState
from stockcast.views import ticker_models


def _ticker_models(state: ServingState, ticker: str, horizon: int | None = None) -> TickerModels:
    """A ticker's models at ``horizon`` (the shortest served when None), with those of its
    other horizons in ``horizons``."""
    horizons = state.champions.horizons
    first = horizon if horizon is not None else horizons[0]
    if first not in horizons:
        listed = ", ".join(str(each) for each in horizons)
        raise HTTPException(404, f"horizon {first} is not served; served horizons (sessions ahead): {listed}")
    shown = [first] if horizon is not None else horizons
    views = []
    for each in shown:
        served = state.champions.get(ticker, each)
        views.append(
            HorizonModels(
                **ticker_models(state.context, ticker, each),
                served_version=served.version if served else None,
            )
        )
    return TickerModels(**views[0].model_dump(), horizons=views)


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["models"])

    @router.get("/models", response_model=list[TickerModels], dependencies=READ_ACCESS)
    def models(state: StateDep) -> list[TickerModels]:
        """Champion and challenger of every served ticker, with their backtest figures."""
        return [_ticker_models(state, ticker) for ticker in state.champions.tickers]

    @router.get(
        "/models/{ticker}",
        response_model=TickerModels,
        responses={404: {"model": ErrorBody}},
        dependencies=READ_ACCESS,
    )
    def ticker_models(
        ticker: str,
        state: StateDep,
        horizon: Annotated[int | None, Query(ge=1, le=60, description=HORIZON_QUERY)] = None,
    ) -> TickerModels:
        """Champion, challenger and the latest decisions of a ticker's model at each served
        horizon (``horizons``; the top-level fields are the shortest's), or at the one asked for."""
        symbol = ticker.upper()
        if symbol not in state.champions.tickers:
            raise HTTPException(404, f"unknown ticker {symbol}")
        return _ticker_models(state, symbol, horizon)

    @router.post(
        "/models/{ticker}/rollback",
        response_model=RollbackResponse,
        responses={
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
            404: {"model": ErrorBody},
            409: {"model": ErrorBody},
        },
        dependencies=KEY_REQUIRED,
    )
    def rollback(
        ticker: str,
        state: StateDep,
        horizon: Annotated[
            int | None,
            Query(
                ge=1,
                le=60,
                description="Sessions ahead of the model to roll back (default: the shortest served).",
            ),
        ] = None,
    ) -> RollbackResponse:
        """Put back the champion the current one (at ``horizon``) replaced; served from the next
        request on. 409 when there is none, or while another process trains the ticker."""
        from stockcast.registry.champion import rollback as roll_back
        from stockcast.store.leases import LeaseHeldError

        symbol = ticker.upper()
        if symbol not in state.champions.tickers:
            raise HTTPException(404, f"unknown ticker {symbol}")
        ahead = horizon if horizon is not None else state.champions.shortest
        if ahead not in state.champions.horizons:
            raise HTTPException(404, f"horizon {ahead} is not served")
        try:
            # A request does not wait for a training of the ticker: 409 names its trainer.
            decision = roll_back(state.context, symbol, wait_seconds=0, horizon=ahead)
        except (LookupError, LeaseHeldError) as error:
            raise HTTPException(409, str(error)) from error
        state.champions.refresh()
        served = state.champions.get(symbol, ahead)
        return RollbackResponse(
            ticker=symbol,
            horizon=ahead,
            champion_version=served.version if served else "",
            reason=decision.reason,
        )

    return router
