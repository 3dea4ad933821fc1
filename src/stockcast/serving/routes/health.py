"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stockcast.serving.deps import StateDep
from stockcast.serving.schemas import Health, Liveness


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["operations"])

    @router.get("/live", response_model=Liveness)
    async def live() -> Liveness:
        """Liveness: 200 while the process answers at all (the probe that restarts it)."""
        return Liveness(status="alive")

    @router.get("/health", response_model=Health, responses={503: {"model": Health}})
    @router.get("/ready", response_model=Health, responses={503: {"model": Health}})
    def health(state: StateDep) -> Any:
        """Readiness (``/health`` and ``/ready``): 200 when the store answers and at least one
        champion is loaded; 503 with why. Tickers whose champion could not be loaded are listed
        in ``problems``. A load balancer routes by this; a restart would not fix what it reports."""
        problems: list[str] = []
        try:
            state.context.store.ping()
        except Exception as error:
            problems.append(f"store: {error}")
        problems += [f"{ticker}: {problem}" for ticker, problem in sorted(state.champions.problems.items())]
        if state.champions.versions() and not state.champions.verified:
            problems.append("champions restored from the last run's snapshot; checking the registry")
        champions = state.champions.versions()
        healthy = bool(champions) and not any(problem.startswith("store") for problem in problems)
        body = Health(status="ok" if healthy else "unavailable", champions=champions, problems=problems)
        return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)

    @router.get("/metrics", include_in_schema=False)
    def metrics(state: StateDep) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
