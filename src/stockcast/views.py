"""Read models shared by the API and the dashboard: one place that turns the store's rows and
the registry's versions into what people look at, so the two never disagree.

Plain dicts and frames only (no FastAPI, no Streamlit): the API validates them into its response
schemas, the dashboard draws them.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from stockcast.context import Context
    from stockcast.registry.mlflow_registry import RegisteredVersion

DECISIONS_SHOWN = 10
MONITORING_HISTORY_DAYS = 60


def clean(value: Any) -> Any:
    """None for a missing number (NaN, NaT), the value otherwise. (Instants without a zone
    get theirs in the API's response schema, `serving.schemas.Instant`.)"""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return value


def _number(tags: dict[str, str], key: str) -> float | None:
    try:
        value = float(tags[key])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(value) else value


def version_summary(version: RegisteredVersion | None) -> dict[str, Any] | None:
    """A registered version's backtest figures and lineage, from its tags."""
    if version is None:
        return None
    tags = version.tags
    return {
        "version": version.version,
        "kind": version.kind,
        "spec": tags.get("spec_key", ""),
        "rmse": _number(tags, "rmse"),
        "naive_rmse": _number(tags, "naive_rmse"),
        "skill_vs_naive": _number(tags, "skill_vs_naive"),
        "coverage": _number(tags, "coverage"),
        "directional_accuracy": _number(tags, "directional_accuracy"),
        "direction_p_value": _number(tags, "direction_p_value"),
        "rmsse": _number(tags, "rmsse"),
        "msis": _number(tags, f"msis_{_level_key(tags)}"),
        "mean_scaled_pinball": _number(tags, "mean_scaled_pinball"),
        "coverage_by_level": {
            key.removeprefix("coverage_"): value
            for key in sorted(tags)
            if key.startswith("coverage_") and (value := _number(tags, key)) is not None
        },
        "data_end": tags.get("data_end"),
        "trained_at": tags.get("trained_at"),
        "decision_reason": tags.get("decision_reason"),
        "test_vs_naive": tags.get("test_vs_naive"),
        "p_value_vs_naive": _number(tags, "p_value_vs_naive"),
        "test_vs_champion": tags.get("test_vs_champion"),
        "p_value_vs_champion": _number(tags, "p_value_vs_champion"),
        "alpha": _number(tags, "alpha"),
        "run_id": version.run_id,
    }


def _level_key(tags: dict[str, str]) -> str:
    from stockcast.modeling.intervals import level_key

    level = _number(tags, "level")
    return level_key(level) if level is not None else "90"


def recent_decisions(
    context: Context, ticker: str | None = None, limit: int = DECISIONS_SHOWN, horizon: int | None = 1
) -> list[dict[str, Any]]:
    """The latest promotion decisions at ``horizon`` (every horizon when None) of one ticker, or
    all, newest first."""
    frame = context.store.load_decisions(ticker, horizon).tail(limit).iloc[::-1]
    return [{key: clean(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]


def ticker_models(context: Context, ticker: str, horizon: int = 1) -> dict[str, Any]:
    """Champion, challenger and the latest decisions of one ticker's model at ``horizon``."""
    registry = context.registry
    return {
        "ticker": ticker,
        "horizon": horizon,
        "champion": version_summary(registry.champion(ticker, horizon)),
        "challenger": version_summary(registry.by_alias(ticker, "challenger", horizon)),
        "decisions": recent_decisions(context, ticker, horizon=horizon),
    }


def monitoring_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest verdict of a ticker (drifted features decoded) with its recent history."""
    latest = {key: clean(value) for key, value in rows[-1].items()}
    latest["drifted_features"] = json.loads(latest.get("drifted_features") or "[]")
    latest["scores"] = json.loads(latest.get("scores") or "{}")
    latest["history"] = [
        {key: clean(value) for key, value in row.items()} for row in rows[-MONITORING_HISTORY_DAYS:]
    ]
    return latest


def monitoring_of(
    context: Context, ticker: str | None = None, horizon: int | None = 1
) -> list[dict[str, Any]]:
    """``monitoring_summary`` per monitored ticker (or the one asked for) at ``horizon`` (every
    horizon when None), by ticker and horizon."""
    frame = context.store.load_monitoring(ticker, horizon=horizon)
    return [
        monitoring_summary(rows.to_dict(orient="records"))
        for _, rows in frame.groupby(["ticker", "horizon"], sort=True)
    ]


def forecast_log(context: Context, ticker: str, limit: int | None = None, horizon: int = 1) -> pd.DataFrame:
    """A ticker's logged batch and API forecasts at ``horizon``, oldest first, with actuals and
    errors once known (what-ifs excluded: they were never forecasts of a real session)."""
    frame = context.store.load_forecasts(ticker=ticker, horizon=horizon)
    frame = frame.loc[frame["origin"] != "what-if"].drop(columns=["features"], errors="ignore")
    # One forecast per target day and model version: the batch one when both exist.
    frame = frame.assign(_api=frame["origin"] != "batch").sort_values(
        ["target_date", "_api", "id"], kind="stable"
    )
    frame = frame.drop_duplicates(["target_date", "model_version"], keep="first").drop(columns="_api")
    frame = frame.reset_index(drop=True)
    return frame.tail(limit) if limit else frame


def latest_forecast(log: pd.DataFrame) -> dict[str, Any] | None:
    """The newest forecast of a ``forecast_log``: of its newest day, the last batch forecast
    (the daily run's, made by the champion of the time), else the last one served."""
    if log.empty:
        return None
    newest = log.loc[log["as_of"] == log["as_of"].max()]
    batch = newest.loc[newest["origin"] == "batch"]
    chosen = (batch if not batch.empty else newest).sort_values("id").iloc[-1]
    return {key: clean(value) for key, value in chosen.items()}


def rolling_errors(log: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per scored target day: the forecast's and the naive forecast's rolling RMSE over
    ``window`` days, and the rolling share of actuals inside the interval (drawn from the
    fifth scored day on, over the days there are until the window fills)."""
    scored = log.dropna(subset=["actual_close"]).copy()
    if scored.empty:
        return pd.DataFrame(columns=["target_date", "rmse", "naive_rmse", "coverage"])
    error = scored["actual_close"] - scored["predicted_close"]
    minimum = min(window, 5)
    scored["rmse"] = error.pow(2).rolling(window, min_periods=minimum).mean().pow(0.5)
    scored["naive_rmse"] = scored["naive_error"].pow(2).rolling(window, min_periods=minimum).mean().pow(0.5)
    scored["coverage"] = scored["covered"].astype(float).rolling(window, min_periods=minimum).mean()
    return scored[["target_date", "rmse", "naive_rmse", "coverage"]].reset_index(drop=True)
