"""What the dashboard reads, through the same store, registry and read models as the API, with
short-lived caches so that moving between pages does not query again each time."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from stockcast import views
from stockcast.context import Context
from stockcast.settings import Settings, load_settings

TTL = timedelta(seconds=30)
BARS_SHOWN = 120


@st.cache_resource(show_spinner=False)
def context() -> Context:
    """One Context per dashboard process, from the same settings as every other command."""
    return Context(load_settings())


def settings() -> Settings:
    return context().settings


def horizons() -> list[int]:
    """The configured horizons (sessions ahead), shortest first."""
    return list(settings().horizons)


@st.cache_data(ttl=TTL, show_spinner=False)
def tickers_with_prices() -> list[str]:
    return sorted(context().store.price_ranges())


@st.cache_data(ttl=TTL, show_spinner=False)
def recent_bars(ticker: str, sessions: int = BARS_SHOWN) -> pd.DataFrame:
    return context().store.load_prices([ticker]).tail(sessions).reset_index(drop=True)


@st.cache_data(ttl=TTL, show_spinner=False)
def forecast_log(ticker: str, horizon: int = 1) -> pd.DataFrame:
    return views.forecast_log(context(), ticker, horizon=horizon)


def latest_forecast(ticker: str, horizon: int = 1) -> dict[str, Any] | None:
    """The newest logged forecast of a ticker at ``horizon`` (the batch one of its newest day)."""
    return views.latest_forecast(forecast_log(ticker, horizon))


def latest_forecasts(ticker: str) -> dict[int, dict[str, Any]]:
    """The newest logged forecast of each configured horizon that has one, shortest first."""
    found = {horizon: latest_forecast(ticker, horizon) for horizon in horizons()}
    return {horizon: forecast for horizon, forecast in found.items() if forecast is not None}


def interval_bounds(forecast: dict[str, Any]) -> dict[float, tuple[float, float]]:
    """A logged forecast's intervals by level (0.5, 0.8, 0.9 ...), from its ``intervals`` JSON;
    a forecast logged without them has only its configured level's ``lower`` and ``upper``."""
    logged = forecast.get("intervals")
    if isinstance(logged, str) and logged:
        return {
            round(float(level), 4): (float(lower), float(upper)) for level, lower, upper in json.loads(logged)
        }
    try:
        level, lower, upper = (float(forecast[key]) for key in ("level", "lower", "upper"))
    except (KeyError, TypeError):  # not logged
        return {}
    if any(math.isnan(value) for value in (level, lower, upper)):
        return {}
    return {round(level, 4): (lower, upper)}


def _rmse(errors: pd.Series) -> float:
    errors = errors.dropna().astype(float)
    return math.sqrt(float((errors**2).mean())) if len(errors) else math.nan


def horizon_scores(ticker: str, level: float = 0.9) -> pd.DataFrame:
    """Per configured horizon, over the ticker's scored forecasts (the forecast log's, what-ifs
    excluded): how many, their RMSE, the naive forecast's (the close at as-of) and their ratio,
    and the share of actuals inside the ``level`` interval (of the forecasts logged with one)."""
    key = round(level, 4)
    rows = []
    for horizon in horizons():
        scored = forecast_log(ticker, horizon).dropna(subset=["actual_close"])
        rmse = _rmse(scored["actual_close"] - scored["predicted_close"])
        naive_rmse = _rmse(scored["naive_error"])
        inside = [
            bounds[key][0] <= actual <= bounds[key][1]
            for actual, bounds in zip(
                scored["actual_close"],
                (interval_bounds(row) for row in scored.to_dict(orient="records")),
                strict=True,
            )
            if key in bounds
        ]
        rows.append(
            {
                "horizon": horizon,
                "scored": len(scored),
                "RMSE": rmse,
                "naive RMSE": naive_rmse,
                "RMSE ÷ naive": rmse / naive_rmse if naive_rmse > 0 else math.nan,
                f"{level:.0%} coverage": sum(inside) / len(inside) if inside else math.nan,
            }
        )
    return pd.DataFrame(rows)


@st.cache_data(ttl=TTL, show_spinner=False)
def summary(ticker: str, forecast_ids: tuple[Any, ...]) -> dict[str, Any]:
    """The plain-language summary of the forecasts shown (``forecast_ids`` key the cache, so the
    text never lags the numbers above it; a language model's rewrite only when configured)."""
    from stockcast.summary import summarize

    written = summarize(context(), [ticker])[0]
    return {"text": written.text, "trust": written.trust, "written_by": written.written_by}


@st.cache_data(ttl=TTL, show_spinner=False)
def models(tickers: tuple[str, ...], ahead: tuple[int, ...]) -> list[dict[str, Any]]:
    """``views.ticker_models`` of each ticker at each horizon of ``ahead``, by ticker then horizon."""
    return [views.ticker_models(context(), ticker, horizon) for ticker in tickers for horizon in ahead]


@st.cache_data(ttl=TTL, show_spinner=False)
def decisions(limit: int = 50) -> pd.DataFrame:
    """The latest decisions about every ticker's champions at every horizon, newest first."""
    frame = context().store.load_decisions(None, horizon=None).tail(limit).iloc[::-1]
    return pd.DataFrame(
        [{key: views.clean(value) for key, value in row.items()} for row in frame.to_dict(orient="records")],
        columns=frame.columns,
    )


@st.cache_data(ttl=TTL, show_spinner=False)
def monitoring() -> list[dict[str, Any]]:
    """The latest verdict (``views.monitoring_of``) of every monitored ticker at each configured
    horizon, by ticker then horizon."""
    configured = set(horizons())
    return [entry for entry in views.monitoring_of(context(), horizon=None) if entry["horizon"] in configured]


@st.cache_data(ttl=TTL, show_spinner=False)
def jobs(limit: int = 20) -> pd.DataFrame:
    return context().store.recent_jobs(limit)


@st.cache_data(ttl=TTL, show_spinner=False)
def report_html(report_uri: str, name: str = "data_drift") -> str | None:
    """An Evidently report's HTML from the artifact store, when it was written."""
    artifacts = context().artifacts
    prefix = report_uri.removeprefix(artifacts.root).lstrip("/")
    key = f"{prefix}/{name}.html"
    return artifacts.read_bytes(key).decode() if artifacts.exists(key) else None


def mlflow_run_link(run_id: str | None) -> str | None:
    """A link to a run in the MLflow UI when tracking goes through a server; None otherwise
    (a database-backed registry has no UI of its own: `mlflow ui` over the same URI)."""
    uri = settings().resolved_tracking_uri
    if not run_id or not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/runs/{run_id}"


def api_url() -> str:
    configured = settings()
    if configured.api_url:
        return configured.api_url.rstrip("/")
    # A comparison, not a bind: a server listening everywhere is reached on loopback.
    host = "127.0.0.1" if configured.host in ("0.0.0.0", "::") else configured.host  # noqa: S104  # nosec B104
    return f"http://{host}:{configured.port}"


def request_forecast(ticker: str) -> dict[str, Any]:
    """A fresh forecast from the API (logged there like any other); raises with the API's
    own message when it refuses."""
    import httpx

    headers = {}
    keys = settings().api_keys
    if keys:
        headers["X-API-Key"] = keys[0].get_secret_value()
    response = httpx.get(f"{api_url()}/predict/{ticker}", headers=headers, timeout=15)
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RuntimeError(f"the API answered {response.status_code}: {detail}")
    return dict(response.json())
