"""Dependencies the routes declare: the process state and the API-key checks."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Request

from stockcast.serving.security import check_key
from stockcast.serving.state import ServingState


async def serving_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(serving_state)]


async def require_key(request: Request, state: StateDep) -> None:
    check_key(request, state.keys)


async def read_access(request: Request, state: StateDep) -> None:
    if state.context.settings.read_requires_key:
        check_key(request, state.keys)


def _rate_limit(request: Request, state: ServingState) -> None:
    """429 with Retry-After once a client (its API key, else its address) exceeds the limit."""
    if state.limiter.unlimited:
        return
    from fastapi import HTTPException

    from stockcast.serving.security import presented_key

    key = presented_key(request)
    client = (
        f"key:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        if key
        else f"ip:{request.client.host if request.client else '?'}"
    )
    wait = state.limiter.retry_after(client)
    if wait is not None:
        raise HTTPException(
            429, f"rate limit exceeded; retry in {wait} s", headers={"Retry-After": str(wait)}
        )


async def forecast_access(request: Request) -> ServingState:
    """The forecast routes' one dependency: the read key where reads need one, then the client's
    rate limit; gives the process state. (One dependency, not three: FastAPI resolves each one
    per request, and on the hottest route that was a quarter of the time.)"""
    state: ServingState = request.app.state.serving
    if state.context.settings.read_requires_key:
        check_key(request, state.keys)
    _rate_limit(request, state)
    return state


KEY_REQUIRED = [Depends(require_key)]
READ_ACCESS = [Depends(read_access)]
ForecastAccess = Annotated[ServingState, Depends(forecast_access)]
