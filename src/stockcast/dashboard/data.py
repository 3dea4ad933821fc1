"""What the dashboard reads, through the same store, registry and read models as the API, with
short-lived caches so that moving between pages does not query again each time."""

from __future__ import annotations

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


@st.cache_data(ttl=TTL, show_spinner=False)
def tickers_with_prices() -> list[str]:
    return sorted(context().store.price_ranges())


@st.cache_data(ttl=TTL, show_spinner=False)
def recent_bars(ticker: str, sessions: int = BARS_SHOWN) -> pd.DataFrame:
    return context().store.load_prices([ticker]).tail(sessions).reset_index(drop=True)


@st.cache_data(ttl=TTL, show_spinner=False)
def forecast_log(ticker: str) -> pd.DataFrame:
    return views.forecast_log(context(), ticker)


def latest_forecast(ticker: str) -> dict[str, Any] | None:
    """The newest logged forecast of a ticker (the batch one of its newest day)."""
    return views.latest_forecast(forecast_log(ticker))


@st.cache_data(ttl=TTL, show_spinner=False)
def summary(ticker: str, forecast_id: Any) -> dict[str, Any]:
    """The plain-language summary of the forecast shown (``forecast_id`` keys the cache, so the
    text never lags the numbers above it; a language model's rewrite only when configured)."""
    from stockcast.summary import summarize

    written = summarize(context(), [ticker])[0]
    return {"text": written.text, "trust": written.trust, "written_by": written.written_by}


@st.cache_data(ttl=TTL, show_spinner=False)
def models(tickers: tuple[str, ...]) -> list[dict[str, Any]]:
    return [views.ticker_models(context(), ticker) for ticker in tickers]


@st.cache_data(ttl=TTL, show_spinner=False)
def decisions(limit: int = 50) -> pd.DataFrame:
    return pd.DataFrame(views.recent_decisions(context(), None, limit))


@st.cache_data(ttl=TTL, show_spinner=False)
def monitoring() -> list[dict[str, Any]]:
    return views.monitoring_of(context())


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
