"""`stockcast serve` with its forecast log switched off, for the benchmark's "logging off versus
on" row only: everything else (cache, metrics, access log, rate limiter) as served.

    uvicorn --factory unlogged_app:create_app   (from benchmarks/, with the same environment)

The product has no such switch: every forecast it answers is logged first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from stockcast.serving import app as serving


class _NoLog:
    async def write(self, records: Sequence[dict[str, Any]]) -> None:
        return None

    def close(self, timeout: float = 10.0) -> None:
        return None


def create_app() -> FastAPI:
    app = serving.create_app()
    served = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(instance: FastAPI) -> AsyncIterator[None]:
        async with served(instance):
            instance.state.serving.forecast_log.close()
            instance.state.serving.forecast_log = _NoLog()
            yield

    app.router.lifespan_context = lifespan
    return app
