"""What `stockcast monitor` concluded per ticker, as stored in the monitoring table."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from stockcast.serving.deps import READ_ACCESS, StateDep
from stockcast.serving.schemas import ErrorBody, TickerMonitoring
from stockcast.views import monitoring_of

Horizon = Annotated[
    int | None,
    Query(
        ge=1, le=60, description="Sessions ahead: whose champion's verdicts (the shortest served by default)."
    ),
]


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["monitoring"], dependencies=READ_ACCESS)

    @router.get("/monitoring", response_model=list[TickerMonitoring])
    def monitoring_all(state: StateDep, horizon: Horizon = None) -> list[TickerMonitoring]:
        """The latest verdict of every monitored ticker at a horizon (the shortest served by default)."""
        ahead = horizon if horizon is not None else state.champions.shortest
        return [TickerMonitoring(**summary) for summary in monitoring_of(state.context, horizon=ahead)]

    @router.get(
        "/monitoring/{ticker}", response_model=TickerMonitoring, responses={404: {"model": ErrorBody}}
    )
    def monitoring_ticker(ticker: str, state: StateDep, horizon: Horizon = None) -> TickerMonitoring:
        """Status (ok, watch, drift, unknown), rolling RMSE against the backtest, coverage,
        direction, drifted features, the report's location, and the recent history of the
        ticker's champion at a horizon (the shortest served by default)."""
        symbol = ticker.upper()
        ahead = horizon if horizon is not None else state.champions.shortest
        found = monitoring_of(state.context, symbol, ahead)
        if not found:
            named = "" if ahead == 1 else f" at {ahead} sessions ahead"
            raise HTTPException(404, f"{symbol} has not been monitored yet{named}; run `stockcast monitor`")
        return TickerMonitoring(**found[0])

    return router
