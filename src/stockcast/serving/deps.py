"""Dependencies the routes declare: the process state and the API-key checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stockcast.serving.security import check_key
from stockcast.serving.state import ServingState


def serving_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(serving_state)]


def require_key(request: Request, state: StateDep) -> None:
    check_key(request, state.keys)


def read_access(request: Request, state: StateDep) -> None:
    if state.context.settings.read_requires_key:
        check_key(request, state.keys)


KEY_REQUIRED = [Depends(require_key)]
READ_ACCESS = [Depends(read_access)]
