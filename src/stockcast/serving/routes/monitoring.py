"""What `stockcast monitor` concluded per ticker, as stored in the monitoring table."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from stockcast.serving.deps import READ_ACCESS, StateDep
from stockcast.serving.schemas import ErrorBody, TickerMonitoring
from stockcast.views import monitoring_of


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["monitoring"], dependencies=READ_ACCESS)

    @router.get("/monitoring", response_model=list[TickerMonitoring])
    def monitoring_all(state: StateDep) -> list[TickerMonitoring]:
        """The latest verdict of every monitored ticker."""
        return [TickerMonitoring(**summary) for summary in monitoring_of(state.context)]

    @router.get(
        "/monitoring/{ticker}", response_model=TickerMonitoring, responses={404: {"model": ErrorBody}}
    )
    def monitoring_ticker(ticker: str, state: StateDep) -> TickerMonitoring:
        """Status (ok, watch, drift, unknown), rolling RMSE against the backtest, coverage,
        direction, drifted features, the report's location, and the recent history."""
        symbol = ticker.upper()
        found = monitoring_of(state.context, symbol)
        if not found:
            raise HTTPException(404, f"{symbol} has not been monitored yet; run `stockcast monitor`")
        return TickerMonitoring(**found[0])

    return router
