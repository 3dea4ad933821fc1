"""What `stockcast monitor` concluded per ticker, as stored in the monitoring table."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from stockcast.serving.deps import READ_ACCESS, StateDep
from stockcast.serving.schemas import ErrorBody, TickerMonitoring
from stockcast.views import monitoring_of

Horizon = Annotated[int, Query(ge=1, le=60, description="Sessions ahead: whose champion's verdicts.")]


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["monitoring"], dependencies=READ_ACCESS)

    @router.get("/monitoring", response_model=list[TickerMonitoring])
    def monitoring_all(state: StateDep, horizon: Horizon = 1) -> list[TickerMonitoring]:
        """The latest verdict of every monitored ticker at a horizon (one session ahead by default)."""
        return [TickerMonitoring(**summary) for summary in monitoring_of(state.context, horizon=horizon)]

    @router.get(
        "/monitoring/{ticker}", response_model=TickerMonitoring, responses={404: {"model": ErrorBody}}
    )
    def monitoring_ticker(ticker: str, state: StateDep, horizon: Horizon = 1) -> TickerMonitoring:
        """Status (ok, watch, drift, unknown), rolling RMSE against the backtest, coverage,
        direction, drifted features, the report's location, and the recent history of the
        ticker's champion at a horizon (one session ahead by default)."""
        symbol = ticker.upper()
        found = monitoring_of(state.context, symbol, horizon)
        if not found:
            ahead = "" if horizon == 1 else f" at {horizon} sessions ahead"
            raise HTTPException(404, f"{symbol} has not been monitored yet{ahead}; run `stockcast monitor`")
        return TickerMonitoring(**found[0])

    return router
