"""What `stockcast monitor` concluded per ticker, as stored in the monitoring table."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, HTTPException

from stockcast.serving.deps import READ_ACCESS, StateDep
from stockcast.serving.schemas import ErrorBody, MonitoringDay, TickerMonitoring

HISTORY_DAYS = 60


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _monitoring(rows: list[dict[str, Any]]) -> TickerMonitoring:
    latest = {key: _clean(value) for key, value in rows[-1].items()}
    latest["drifted_features"] = json.loads(latest["drifted_features"] or "[]")
    history = [
        MonitoringDay(**{key: _clean(row[key]) for key in MonitoringDay.model_fields})
        for row in rows[-HISTORY_DAYS:]
    ]
    return TickerMonitoring(**latest, history=history)


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["monitoring"], dependencies=READ_ACCESS)

    @router.get("/monitoring", response_model=list[TickerMonitoring])
    def monitoring_all(state: StateDep) -> list[TickerMonitoring]:
        """The latest verdict of every monitored ticker."""
        frame = state.context.store.load_monitoring()
        return [_monitoring(rows.to_dict(orient="records")) for _, rows in frame.groupby("ticker", sort=True)]

    @router.get(
        "/monitoring/{ticker}", response_model=TickerMonitoring, responses={404: {"model": ErrorBody}}
    )
    def monitoring_ticker(ticker: str, state: StateDep) -> TickerMonitoring:
        """Status (ok, watch, drift, unknown), rolling RMSE against the backtest, coverage,
        direction, drifted features, the report's location, and the recent history."""
        symbol = ticker.upper()
        rows = state.context.store.load_monitoring(symbol).to_dict(orient="records")
        if not rows:
            raise HTTPException(404, f"{symbol} has not been monitored yet; run `stockcast monitor`")
        return _monitoring(rows)

    return router
