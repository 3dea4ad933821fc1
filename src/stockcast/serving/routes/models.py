"""Champions and challengers per ticker, and rollback."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from stockcast.serving.deps import KEY_REQUIRED, READ_ACCESS, StateDep
from stockcast.serving.schemas import ErrorBody, RollbackResponse, TickerModels
from stockcast.serving.state import ServingState
from stockcast.views import ticker_models


def _ticker_models(state: ServingState, ticker: str) -> TickerModels:
    served = state.champions.get(ticker)
    return TickerModels(
        **ticker_models(state.context, ticker), served_version=served.version if served else None
    )


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
    def ticker_models(ticker: str, state: StateDep) -> TickerModels:
        symbol = ticker.upper()
        if symbol not in state.champions.tickers:
            raise HTTPException(404, f"unknown ticker {symbol}")
        return _ticker_models(state, symbol)

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
    def rollback(ticker: str, state: StateDep) -> RollbackResponse:
        """Put back the champion the current one replaced; served from the next request on. 409
        when there is none, or while another process trains the ticker."""
        from stockcast.registry.champion import rollback as roll_back
        from stockcast.store.leases import LeaseHeldError

        symbol = ticker.upper()
        if symbol not in state.champions.tickers:
            raise HTTPException(404, f"unknown ticker {symbol}")
        try:
            # A request does not wait for a training of the ticker: 409 names its trainer.
            decision = roll_back(state.context, symbol, wait_seconds=0)
        except (LookupError, LeaseHeldError) as error:
            raise HTTPException(409, str(error)) from error
        state.champions.refresh()
        served = state.champions.get(symbol)
        return RollbackResponse(
            ticker=symbol, champion_version=served.version if served else "", reason=decision.reason
        )

    return router
