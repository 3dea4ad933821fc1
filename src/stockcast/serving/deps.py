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


async def rate_limit(request: Request, state: StateDep) -> None:
    """429 with Retry-After once a client (its API key, else its address) exceeds the limit."""
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


KEY_REQUIRED = [Depends(require_key)]
RATE_LIMITED = [Depends(rate_limit)]
READ_ACCESS = [Depends(read_access)]
