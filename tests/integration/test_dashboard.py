"""The dashboard's page logic under Streamlit's AppTest (no browser): empty states that say what
to run, and each page showing what the store and the registry hold, at every horizon."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from fastapi.testclient import TestClient
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
    assert app.header[0].value == "Close forecasts 1 session ahead"
    values = {metric.label: metric.value for metric in app.metric}
    assert values[f"1 session ahead: {stored['target_date']}"] == f"{stored['predicted_close']:,.2f}"
    assert values[f"Close {stored['as_of']}"] == f"{stored['last_close']:,.2f}"
    row = app.dataframe[0].value.iloc[0]
    assert (row["horizon"], row["target session"], row["version"]) == (
        1,
        str(stored["target_date"]),
        stored["model_version"],
    )
    assert row["forecast"] == pytest.approx(stored["predicted_close"])
    assert (row["90% lower"], row["90% upper"]) == pytest.approx((stored["lower"], stored["upper"]))
    assert app.selectbox[0].value == "AAA"
    assert not app.radio  # one horizon configured: nothing to choose
    from stockcast.summary import summarize

    [summary] = summarize(filled, ["AAA"])
    assert any(block.value == summary.text for block in app.markdown), "the plain-words summary is shown"


def test_the_history_page_tables_every_forecast_with_its_actual(filled):
    app = page("history")
    table, by_horizon = app.dataframe
    assert len(table.value) == len(filled.store.load_forecasts(ticker="AAA")) == 30
    assert table.value["actual_close"].notna().sum() == 30
    assert not app.info  # scored: the rolling charts are drawn, no empty state
    assert list(by_horizon.value["horizon"]) == [1] and list(by_horizon.value["scored"]) == [30]


def test_the_models_page_lists_the_champion_with_its_figures_and_history(filled):
    app = page("models")
    models, history = app.dataframe
    champion = filled.registry.champion("AAA")
    row = models.value.iloc[0]
    assert (row["ticker"], row["horizon"], row["role"], row["version"]) == (
        "AAA",
        1,
        "champion",
        champion.version,
    )
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
    assert list(frame["horizon"]) == [1]


# -- Several horizons -----------------------------------------------------------------------------
HORIZONS = [1, 5, 20]
DAYS = 40
# Level and half-width (a fraction of the forecast) one session ahead; wider by sqrt(horizon).
WIDTHS = ((0.5, 0.004), (0.8, 0.008), (0.9, 0.012))


def horizon_records(context: Context, days: int) -> list[dict]:
    """One batch forecast a session at every horizon, by each horizon's champion, as of each of
    the last ``days`` stored sessions (the newest included: its forecasts are all open). The
    newest 20-session forecast was logged without its multi-level intervals (only the 90% one
    in lower/upper, as before multi-level intervals)."""
    bars = context.store.load_prices(["AAA"]).tail(days)
    newest = bars["date"].iloc[-1]
    records = []
    for horizon in HORIZONS:
        champion = context.registry.champion("AAA", horizon)
        spread = math.sqrt(horizon)
        for as_of, close in zip(bars["date"], bars["close"], strict=True):
            predicted = close * (1 + 0.001 * horizon)
            intervals = [
                [level, predicted * (1 - width * spread), predicted * (1 + width * spread)]
                for level, width in WIDTHS
            ]
            records.append(
                {
                    "request_id": f"batch:AAA:{horizon}:{as_of.date()}",
                    "ticker": "AAA",
                    "horizon": horizon,
                    "as_of": as_of.date(),
                    "target_date": (as_of + pd.offsets.BDay(horizon)).date(),
                    "predicted_close": predicted,
                    "last_close": close,
                    "lower": intervals[-1][1],
                    "upper": intervals[-1][2],
                    "level": 0.9,
                    "intervals": None if horizon == 20 and as_of == newest else json.dumps(intervals),
                    "model_name": champion.name,
                    "model_version": champion.version,
                    "model_kind": champion.kind,
                    "origin": "batch",
                }
            )
    return records


@pytest.fixture
def horizons(monkeypatch):
    """One ticker with a champion at 1, 5 and 20 sessions, 40 days of forecasts at each (scored
    where their target session is stored) and a verdict per horizon."""
    monkeypatch.setenv("STOCKCAST_TICKERS", "AAA")
    monkeypatch.setenv("STOCKCAST_HORIZONS", ",".join(map(str, HORIZONS)))
    for key, value in SETTINGS.items():
        monkeypatch.setenv(f"STOCKCAST_{key.upper()}", str(value))
    context = Context(load_settings())
    context.store.upsert_prices(autocorrelated_bars(400, phi=0.6))
    refresh_feature_store(context)
    reports, failures = train_many(context, ["AAA"], force=True)
    assert not failures and sorted(report.horizon for report in reports) == HORIZONS
    context.store.log_forecasts(horizon_records(context, DAYS))
    fill_actuals(context, ["AAA"])
    monitor(context, ["AAA"], reports=False)
    return context


def plotly_figure(app: AppTest, key: str) -> dict:
    [chart] = [chart for chart in app.get("plotly_chart") if chart.key == key]
    return json.loads(chart.proto.spec)


def day(value) -> str:
    return str(pd.Timestamp(value).date())


def test_the_forecast_page_draws_a_fan_of_every_horizon_and_tables_their_numbers(horizons, monkeypatch):
    newest = horizons.store.load_prices(["AAA"])["date"].iloc[-1].date()
    logged = horizons.store.load_forecasts(ticker="AAA")
    latest = logged.loc[logged["as_of"] == newest].set_index("horizon").loc[HORIZONS]
    assert len(latest) == len(HORIZONS)
    last_close = float(latest["last_close"].iloc[0])
    app = page("forecast")
    assert app.header[0].value == "Close forecasts 1, 5 and 20 sessions ahead"

    # The numbers of each horizon: a metric and a table row (target session, forecast, 90%).
    values = {metric.label: metric.value for metric in app.metric}
    assert values[f"Close {newest}"] == f"{last_close:,.2f}"
    table = app.dataframe[0].value
    assert list(table["horizon"]) == HORIZONS
    for horizon, row in zip(HORIZONS, table.to_dict(orient="records"), strict=True):
        stored = latest.loc[horizon]
        label = f"{horizon} session{'' if horizon == 1 else 's'} ahead"
        assert values[f"{label}: {stored['target_date']}"] == f"{stored['predicted_close']:,.2f}"
        assert row["target session"] == str(stored["target_date"]) == day(newest + pd.offsets.BDay(horizon))
        assert row["forecast"] == pytest.approx(stored["predicted_close"])
        assert (row["90% lower"], row["90% upper"]) == pytest.approx((stored["lower"], stored["upper"]))
        assert row["as of"] == str(newest)
        assert row["version"] == horizons.registry.champion("AAA", horizon).version

    # The fan: a marker per horizon at its target session with its 90% interval ...
    traces = plotly_figure(app, "forecast-chart")["data"]
    markers = {trace["name"]: trace for trace in traces if trace.get("meta")}
    assert [trace["meta"]["horizon"] for trace in markers.values()] == HORIZONS
    for horizon in HORIZONS:
        stored = latest.loc[horizon]
        [marker] = [trace for trace in markers.values() if trace["meta"]["horizon"] == horizon]
        assert [day(x) for x in marker["x"]] == [str(stored["target_date"])]
        assert marker["y"] == pytest.approx([stored["predicted_close"]])
        assert marker["error_y"]["array"] == pytest.approx([stored["upper"] - stored["predicted_close"]])
        assert marker["error_y"]["arrayminus"] == pytest.approx([stored["predicted_close"] - stored["lower"]])
    # ... and a band per level from the as-of close through every horizon's bounds at its target,
    # widening with the horizon; the 20-session forecast logged without its multi-level intervals
    # is in the 90% band through its lower and upper, and only there.
    bands = {
        trace["name"]: trace for trace in traces if trace.get("name", "").endswith(("upper", "interval"))
    }
    assert set(bands) == {
        f"{level} {edge}" for level in ("50%", "80%", "90%") for edge in ("upper", "interval")
    }
    for level, width in WIDTHS:
        reached = HORIZONS if level == 0.9 else [1, 5]
        upper, lower = bands[f"{level:.0%} upper"], bands[f"{level:.0%} interval"]
        assert lower["fill"] == "tonexty" and traces.index(upper) + 1 == traces.index(lower)
        targets = [str(newest)] + [str(latest.loc[horizon, "target_date"]) for horizon in reached]
        assert [day(x) for x in upper["x"]] == [day(x) for x in lower["x"]] == targets
        predicted = latest.loc[reached, "predicted_close"].to_numpy()
        spread = width * predicted * [math.sqrt(horizon) for horizon in reached]
        assert upper["y"] == pytest.approx([last_close, *(predicted + spread)])
        assert lower["y"] == pytest.approx([last_close, *(predicted - spread)])
        widths = [high - low for high, low in zip(upper["y"], lower["y"], strict=True)]
        assert widths == sorted(widths) and len(set(widths)) == len(widths)

    # A fresh forecast from the API lists every horizon it answered.
    from stockcast.dashboard import data
    from stockcast.serving.app import create_app

    with TestClient(create_app(horizons.settings)) as client:
        answers: list[dict] = []

        def request_forecast(ticker: str) -> dict:
            answers.append(client.get(f"/predict/{ticker}").json())
            return answers[-1]

        monkeypatch.setattr(data, "request_forecast", request_forecast)
        app.button[0].click().run()
    assert not app.exception, [item.value for item in app.exception]
    [answer] = answers
    [success] = app.success
    assert [each["horizon"] for each in answer["forecasts"]] == HORIZONS
    for each in answer["forecasts"]:
        assert f"{each['target_date']}: {each['predicted_close']:,.2f}" in success.value
        assert f"model version {each['model']['version']}" in success.value


def test_the_history_page_shows_the_chosen_horizon_and_scores_every_horizon(horizons):
    app = page("history")
    [radio] = app.radio
    assert radio.options == [f"{h} session{'' if h == 1 else 's'} ahead" for h in HORIZONS]
    assert radio.value == 1
    by_horizon = app.dataframe[-1].value
    assert list(by_horizon["horizon"]) == HORIZONS
    assert list(by_horizon["scored"]) == [DAYS - horizon for horizon in HORIZONS]
    for horizon, row in zip(HORIZONS, by_horizon.to_dict(orient="records"), strict=True):
        scored = horizons.store.load_forecasts(ticker="AAA", horizon=horizon).dropna(subset=["actual_close"])
        rmse = math.sqrt(((scored["actual_close"] - scored["predicted_close"]) ** 2).mean())
        naive = math.sqrt((scored["naive_error"] ** 2).mean())
        assert row["RMSE"] == pytest.approx(rmse)
        assert row["naive RMSE"] == pytest.approx(naive)
        assert row["RMSE ÷ naive"] == pytest.approx(rmse / naive)
        assert row["90% coverage"] == pytest.approx(scored["covered"].astype(float).mean())
    assert by_horizon["RMSE"].is_monotonic_increasing  # further ahead, further off

    radio.set_value(5).run()
    assert not app.exception, [item.value for item in app.exception]
    logged = horizons.store.load_forecasts(ticker="AAA", horizon=5)
    table = app.dataframe[0].value
    assert len(table) == DAYS and table["actual_close"].notna().sum() == DAYS - 5
    assert table["predicted_close"].to_numpy() == pytest.approx(logged["predicted_close"].to_numpy())
    traces = {trace.get("name"): trace for trace in plotly_figure(app, "history-chart")["data"]}
    assert [day(x) for x in traces["forecast"]["x"]] == [str(each) for each in logged["target_date"]]
    scored = logged.dropna(subset=["actual_close"])
    assert traces["actual"]["y"] == pytest.approx(scored["actual_close"].to_list())
    rmse = plotly_figure(app, "rmse-chart")["data"]
    assert [trace["name"] for trace in rmse] == ["champion", "naive"]
    assert [day(x) for x in rmse[0]["x"]] == [str(each) for each in scored["target_date"]]


def test_the_models_and_monitoring_pages_have_a_row_per_horizon(horizons):
    app = page("models")
    models, history = app.dataframe
    champions = models.value.loc[models.value["role"] == "champion"]
    assert list(champions["horizon"]) == HORIZONS
    assert list(champions["version"]) == [horizons.registry.champion("AAA", h).version for h in HORIZONS]
    assert sorted(history.value["horizon"]) == HORIZONS  # the first training's decision at each

    app = page("monitoring")
    table = app.dataframe[0].value
    frame = table.data if hasattr(table, "data") else table
    stored = horizons.store.load_monitoring("AAA", latest_only=True, horizon=None)
    assert list(zip(frame["ticker"], frame["horizon"], strict=True)) == [("AAA", h) for h in HORIZONS]
    assert list(frame["status"]) == list(stored["status"])
    assert list(frame["version"]) == [horizons.registry.champion("AAA", h).version for h in HORIZONS]
    assert list(frame["scored"]) == list(stored["evaluated"])
    assert frame["coverage"].to_numpy() == pytest.approx(stored["coverage"].to_numpy(), nan_ok=True)
    assert frame["RMSE ÷ backtest"].to_numpy() == pytest.approx(stored["rmse_ratio"].to_numpy(), nan_ok=True)
    assert app.selectbox[0].options == ["AAA"]  # the report drill-down: one per ticker
    assert any("No Evidently report for AAA" in info.value for info in app.info)
