"""Champions and challengers per ticker, and rollback."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, HTTPException

from stockcast.registry.mlflow_registry import RegisteredVersion
from stockcast.serving.deps import KEY_REQUIRED, READ_ACCESS, StateDep
from stockcast.serving.schemas import (
    DecisionSummary,
    ErrorBody,
    RollbackResponse,
    TickerModels,
    VersionSummary,
)
from stockcast.serving.state import ServingState


def _number(tags: dict[str, str], key: str) -> float | None:
    try:
        value = float(tags[key])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(value) else value


def _summary(version: RegisteredVersion | None) -> VersionSummary | None:
    if version is None:
        return None
    tags = version.tags
    return VersionSummary(
        version=version.version,
        kind=version.kind,
        spec=tags.get("spec_key", ""),
        rmse=_number(tags, "rmse"),
        naive_rmse=_number(tags, "naive_rmse"),
        skill_vs_naive=_number(tags, "skill_vs_naive"),
        coverage=_number(tags, "coverage"),
        directional_accuracy=_number(tags, "directional_accuracy"),
        data_end=tags.get("data_end"),
        decision_reason=tags.get("decision_reason"),
    )


DECISIONS_SHOWN = 10


def _decisions(state: ServingState, ticker: str) -> list[DecisionSummary]:
    frame = state.context.store.load_decisions(ticker).tail(DECISIONS_SHOWN).iloc[::-1]
    return [
        DecisionSummary(**{key: _clean(row.get(key)) for key in DecisionSummary.model_fields})
        for row in frame.to_dict(orient="records")
    ]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _ticker_models(state: ServingState, ticker: str) -> TickerModels:
    registry = state.context.registry
    served = state.champions.get(ticker)
    return TickerModels(
        ticker=ticker,
        champion=_summary(registry.champion(ticker)),
        challenger=_summary(registry.by_alias(ticker, "challenger")),
        served_version=served.version if served else None,
        decisions=_decisions(state, ticker),
    )


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["models"])

    @router.get("/models", response_model=list[TickerModels], dependencies=READ_ACCESS)
    def models(state: StateDep) -> list[TickerModels]:
        """Champion and challenger of every served ticker, with their backtest figures."""
        return [_ticker_models(state, ticker) for ticker in state.champions.tickers]

    @router.get(
        "/models/{ticker}",
        response_model=TickerModels,
        responses={404: {"model": ErrorBody}},
        dependencies=READ_ACCESS,
    )
    def ticker_models(ticker: str, state: StateDep) -> TickerModels:
        symbol = ticker.upper()
        if symbol not in state.champions.tickers:
            raise HTTPException(404, f"unknown ticker {symbol}")
        return _ticker_models(state, symbol)

    @router.post(
        "/models/{ticker}/rollback",
        response_model=RollbackResponse,
        responses={
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
            404: {"model": ErrorBody},
            409: {"model": ErrorBody},
        },
        dependencies=KEY_REQUIRED,
    )
    def rollback(ticker: str, state: StateDep) -> RollbackResponse:
        """Put back the champion the current one replaced; served from the next request on."""
        from stockcast.registry.champion import rollback as roll_back

        symbol = ticker.upper()
        if symbol not in state.champions.tickers:
            raise HTTPException(404, f"unknown ticker {symbol}")
        try:
            decision = roll_back(state.context, symbol)
        except LookupError as error:
            raise HTTPException(409, str(error)) from error
        state.champions.refresh()
        served = state.champions.get(symbol)
        return RollbackResponse(
            ticker=symbol, champion_version=served.version if served else "", reason=decision.reason
        )

    return router
