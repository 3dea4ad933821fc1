"""The dashboard's page logic under Streamlit's AppTest (no browser): empty states that say what
to run, and each page showing what the store and the registry hold."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from tests.integration.test_monitoring import SETTINGS, log_daily_forecasts
from tests.series import autocorrelated_bars

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.monitoring.actuals import fill_actuals
from stockcast.monitoring.monitor import monitor
from stockcast.pipeline import train_many
from stockcast.settings import load_settings


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest runs its script as ``__main__`` and leaves it there; a later spawned process
    (Dask's workers, a process pool) would run that script again on import. Put ours back."""
    import sys

    main = sys.modules["__main__"]
    keep = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    yield
    sys.modules["__main__"] = main
    for name, value in keep.items():
        setattr(main, name, value)


def render(page: str) -> None:
    """AppTest runs this function's source as the script: one dashboard page."""
    from stockcast.dashboard.pages import PAGES

    PAGES[page][1]()


def page(name: str) -> AppTest:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # each test has its own data folder, so its own Context
    app = AppTest.from_function(render, args=(name,), default_timeout=60)
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


@pytest.mark.parametrize("name", ["forecast", "history", "models", "monitoring"])
def test_an_empty_store_explains_what_to_run_on_every_page(name, monkeypatch):
    monkeypatch.setenv("STOCKCAST_TICKERS", "AAA")
    app = page(name)
    assert any("stockcast run" in info.value for info in app.info), [info.value for info in app.info]


@pytest.fixture
def filled(monkeypatch):
    """One ticker with a champion, 30 logged forecasts scored against actuals, and a verdict."""
    monkeypatch.setenv("STOCKCAST_TICKERS", "AAA")
    for key, value in SETTINGS.items():
        monkeypatch.setenv(f"STOCKCAST_{key.upper()}", str(value))
    context = Context(load_settings())
    context.store.upsert_prices(autocorrelated_bars(400, phi=0.6))
    refresh_feature_store(context)
    _, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    log_daily_forecasts(context, days=30, shifted=0, bias=0.0)
    fill_actuals(context, ["AAA"])
    monitor(context, ["AAA"], reports=False)
    return context


def test_the_forecast_page_shows_the_stored_forecast_and_its_model(filled):
    app = page("forecast")
    stored = filled.store.load_forecasts(ticker="AAA").iloc[-1]
    values = {metric.label: metric.value for metric in app.metric}
    assert values["Forecast close"] == f"{stored['predicted_close']:,.2f}"
    assert values["Target session"] == str(stored["target_date"])
    assert f"version {stored['model_version']}" in app.caption[0].value
    assert app.selectbox[0].value == "AAA"
    from stockcast.summary import summarize

    [summary] = summarize(filled, ["AAA"])
    assert any(block.value == summary.text for block in app.markdown), "the plain-words summary is shown"


def test_the_history_page_tables_every_forecast_with_its_actual(filled):
    app = page("history")
    [table] = app.dataframe
    assert len(table.value) == len(filled.store.load_forecasts(ticker="AAA")) == 30
    assert table.value["actual_close"].notna().sum() == 30
    assert not app.info  # scored: the rolling charts are drawn, no empty state


def test_the_models_page_lists_the_champion_with_its_figures_and_history(filled):
    app = page("models")
    models, history = app.dataframe
    champion = filled.registry.champion("AAA")
    row = models.value.iloc[0]
    assert (row["ticker"], row["role"], row["version"]) == ("AAA", "champion", champion.version)
    assert row["skill vs naive"] == pytest.approx(float(champion.tags["skill_vs_naive"]))
    assert row["MLflow run"] == champion.run_id  # no server: the run id to look up
    # The momentum series gives the champion a real edge: its test and p-value are shown.
    assert row["p vs naive"] == pytest.approx(float(champion.tags["p_value_vs_naive"]))
    assert row["p vs naive"] < 0.05 and row["RMSSE"] == pytest.approx(float(champion.tags["rmsse"]))
    assert list(history.value["ticker"]) == ["AAA"] and bool(history.value["promoted"].iloc[0])
    assert history.value["test_vs_naive"].iloc[0] == "DM-HLN"
    assert history.value["p_value_vs_naive"].iloc[0] == pytest.approx(row["p vs naive"])


def test_the_monitoring_page_shows_each_tickers_status(filled):
    app = page("monitoring")
    status = filled.store.load_monitoring("AAA").iloc[-1]["status"]
    table = app.dataframe[0].value
    frame = table.data if hasattr(table, "data") else table  # a Styler keeps its frame in .data
    assert list(frame["ticker"]) == ["AAA"] and list(frame["status"]) == [status]
