"""The forecast log: what was forecast, by which model, and, once known, what happened."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from stockcast.serving.deps import READ_ACCESS, StateDep
from stockcast.serving.schemas import LoggedForecast, PredictionsPage
from stockcast.views import clean


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["forecast log"], dependencies=READ_ACCESS)

    @router.get("/predictions", response_model=PredictionsPage)
    def predictions(
        state: StateDep,
        ticker: str | None = None,
        start: Annotated[date | None, Query(alias="from", description="First target date.")] = None,
        end: Annotated[date | None, Query(alias="to", description="Last target date.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        horizon: Annotated[
            int | None, Query(ge=1, le=60, description="Sessions ahead; every horizon when omitted.")
        ] = None,
    ) -> PredictionsPage:
        """Logged forecasts by target date (each with its horizon), with actuals and errors once
        they are known."""
        frame = state.context.store.load_forecasts(
            ticker=ticker.upper() if ticker else None,
            start=start,
            end=end,
            limit=limit + 1,
            offset=offset,
            horizon=horizon,
        )
        rows = frame.drop(columns=["id", "features", "intervals"]).to_dict(orient="records")
        items = [LoggedForecast(**{key: clean(value) for key, value in row.items()}) for row in rows[:limit]]
        return PredictionsPage(
            items=items, limit=limit, offset=offset, next_offset=offset + limit if len(rows) > limit else None
        )

    return router
