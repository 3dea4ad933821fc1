"""Forecasts 1, 5 and 20 sessions ahead: a model, champion and gate per horizon, forecasts logged
per horizon with their exchange target dates, the API answering every horizon with its one-day
fields as before, and monitoring per horizon."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.series import synthetic_bars

from stockcast.calendars import session_after
from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.horizons import horizon_label
from stockcast.pipeline import forecast_many, train_many
from stockcast.settings import load_settings

HORIZONS = [1, 5, 20]
SETTINGS = {
    "tickers": "AAA",
    "horizons": "1,5,20",
    "backtest_days": 100,
    "min_train_days": 150,
    "refit_every_days": 50,
    "models": "naive,ridge,arima",
}


@pytest.fixture
def context() -> Context:
    context = Context(load_settings(**SETTINGS))
    context.store.upsert_prices(synthetic_bars(("AAA",), days=700, seed=21))
    refresh_feature_store(context)
    return context


@pytest.fixture
def trained(context: Context) -> dict[int, str]:
    reports, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    return {report.horizon: report.version for report in reports}


def test_every_horizon_has_its_own_model_gate_and_decision(context, trained):
    assert sorted(trained) == HORIZONS
    registry = context.registry
    names = {horizon: registry.champion("AAA", horizon).name for horizon in HORIZONS}
    # The one-session model keeps the name it had before horizons.
    assert names == {1: "stockcast-AAA", 5: "stockcast-AAA-h5", 20: "stockcast-AAA-h20"}
    for horizon in HORIZONS:
        champion = registry.champion("AAA", horizon)
        assert champion.tags["horizon"] == str(horizon)
        assert registry.load("AAA", champion.version, horizon).horizon == horizon
        decisions = context.store.load_decisions("AAA", horizon)
        assert len(decisions) == 1 and decisions["horizon"].iloc[0] == horizon
        # The gate judged the horizon's own window against the naive forecast at that horizon.
        tests = decisions["tests"].iloc[0]
        assert tests is None or "DM-HLN" in tests or "Clark-West" in tests
    # Its backtest window ends where its labels do: h sessions before the newest bar.
    bars = context.store.load_prices(["AAA"])["date"].dt.date.to_list()
    for horizon in HORIZONS:
        window_end = date.fromisoformat(registry.champion("AAA", horizon).tags["window_end"])
        assert bars.index(bars[-1]) - bars.index(window_end) == horizon


def test_a_rerun_trains_nothing_and_a_short_history_limits_only_the_long_horizon(context, trained):
    reports, failures = train_many(context, ["AAA"])
    assert (reports, failures) == ([], {})
    # Enough history for the full backtest at 1 and 5 sessions, not at 20 (whose training rows
    # end 19 sessions further back): there only the naive forecast is evaluated, as for any
    # ticker whose history is too short, and the other horizons are untouched by it.
    short = Context(load_settings(**{**SETTINGS, "tickers": "BBB", "min_train_days": 300}))
    short.store.upsert_prices(synthetic_bars(("BBB",), days=535, seed=4))
    refresh_feature_store(short)
    reports, failures = train_many(short, ["BBB"], force=True)
    assert not failures
    candidates = {report.horizon: set(report.candidates) for report in reports}
    assert candidates[1] == candidates[5] == {"naive()", "ridge(alpha=10.0)", "arima(p=1,q=1)"}
    assert candidates[20] == {"naive()"}


def test_forecasts_are_logged_per_horizon_with_exchange_target_dates(context, trained, monkeypatch):
    listings = []
    aliased_all = context.registry.aliased_all
    monkeypatch.setattr(
        context.registry, "aliased_all", lambda *args: listings.append(args) or aliased_all(*args)
    )
    forecasts, failures, logged = forecast_many(context, ["AAA"])
    assert not failures and logged == 3
    assert len(listings) == 1  # every champion from one listing of the aliases, not one request each
    assert {(forecast.model_name, forecast.model_version) for forecast in forecasts} == {
        (context.registry.champion("AAA", horizon).name, context.registry.champion("AAA", horizon).version)
        for horizon in HORIZONS
    }
    by_horizon = {forecast.horizon: forecast for forecast in forecasts}
    as_of = by_horizon[1].as_of
    for horizon, forecast in by_horizon.items():
        assert forecast.target_date == session_after("AAA", as_of, horizon)
        assert forecast.lower < forecast.predicted_close < forecast.upper
    widths = [by_horizon[h].upper / by_horizon[h].lower for h in HORIZONS]
    assert widths[0] < widths[1] < widths[2], "intervals widen with the horizon"
    rows = context.store.load_forecasts(ticker="AAA").set_index("horizon")
    assert sorted(rows.index) == HORIZONS
    assert rows.loc[5, "model_name"] == "stockcast-AAA-h5"
    # A rerun of the day logs nothing twice; a ticker without champions fails alone, per horizon.
    again, missing, logged_again = forecast_many(context, ["AAA", "ZZZ"])
    assert logged_again == 0 and len(again) == 3
    assert missing == {
        horizon_label("ZZZ", h): "no champion model; run `stockcast train` first" for h in HORIZONS
    }


def test_the_api_answers_every_horizon_and_keeps_its_one_day_fields(context, trained):
    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        answer = client.get("/predict/AAA")
        assert answer.status_code == 200
        body = answer.json()
        assert [each["horizon"] for each in body["forecasts"]] == HORIZONS
        first = body["forecasts"][0]
        # The one-day fields are where they were, and are the shortest horizon's.
        for field in ("target_date", "predicted_close", "interval", "intervals", "model", "request_id"):
            assert body[field] == first[field]
        assert body["horizon"] == 1 and body["model"]["name"] == "stockcast-AAA"
        assert body["target_date"] == session_after("AAA", date.fromisoformat(body["as_of"]), 1).isoformat()
        widths = [each["interval"]["upper"] - each["interval"]["lower"] for each in body["forecasts"]]
        assert widths == sorted(widths) and widths[0] < widths[-1]
        # One logged row per horizon answered, each with its own request id.
        logged = context.store.load_forecasts(ticker="AAA").set_index("request_id")
        for each in body["forecasts"]:
            assert logged.loc[each["request_id"], "horizon"] == each["horizon"]

        five = client.get("/predict/AAA", params={"horizon": 5}).json()
        assert five["horizon"] == 5 and [each["horizon"] for each in five["forecasts"]] == [5]
        assert five["model"]["name"] == "stockcast-AAA-h5"
        assert client.get("/predict/AAA", params={"horizon": 7}).status_code == 404
        assert client.get("/predict/AAA", params={"horizon": 0}).status_code == 422

        batch = client.post("/predict/batch", json={"tickers": ["AAA"], "horizon": 20}).json()
        assert batch["results"][0]["forecast"]["horizon"] == 20

        page = client.get("/predictions", params={"ticker": "AAA", "horizon": 5}).json()
        assert page["items"] and {item["horizon"] for item in page["items"]} == {5}

        models = client.get("/models/AAA").json()
        assert [each["horizon"] for each in models["horizons"]] == HORIZONS
        assert models["served_version"] == trained[1]
        assert client.get("/models/AAA", params={"horizon": 20}).json()["served_version"] == trained[20]

        closes = [100.0 * 1.001**day for day in range(80)]
        what_if = client.post("/predict", json={"ticker": "AAA", "recent_prices": closes, "horizon": 5})
        assert what_if.status_code == 200 and what_if.json()["horizon"] == 5

        metrics = client.get("/metrics").text
        assert 'stockcast_champion_version{horizon="20",ticker="AAA"}' in metrics


def test_monitoring_keeps_a_verdict_per_horizon(context, trained):
    from stockcast.monitoring.monitor import monitor

    healths = monitor(context, ["AAA"], reports=False)
    assert sorted(health.horizon for health in healths) == HORIZONS
    rows = context.store.load_monitoring("AAA", horizon=None)
    assert sorted(rows["horizon"]) == HORIZONS
    assert context.store.load_monitoring("AAA", latest_only=True, horizon=20)["horizon"].tolist() == [20]
    versions = dict(zip(rows["horizon"], rows["model_version"], strict=True))
    assert versions == {horizon: trained[horizon] for horizon in HORIZONS}
    assert all(pd.notna(rows["status"]))

    from stockcast.serving.app import create_app

    # The gauges carry the horizon; one dropped from the settings is no longer exported (its
    # last verdict would otherwise be alerted on for ever), though its rows stay stored.
    fewer = context.settings.model_copy(update={"horizons": [1, 5]})
    with TestClient(create_app(fewer)) as client:
        metrics = client.get("/metrics").text
    assert 'stockcast_monitor_status{horizon="5",ticker="AAA"}' in metrics
    assert 'horizon="20"' not in metrics
    assert sorted(context.store.load_monitoring("AAA", horizon=None)["horizon"]) == HORIZONS


def test_a_longer_horizon_whose_forecast_is_not_finite_is_left_out_not_served(context, trained, caplog):
    """The 20-session champion overflows: the answer of every horizon carries the others, a
    request for that horizon is a 503 naming it, the cause is logged, and nothing non-finite is
    logged to the forecast log; when the first horizon's does, the whole answer is a 503."""
    import logging

    import numpy as np

    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        state = client.app.state.serving
        assert state.join_warm_up()
        before = len(context.store.load_forecasts(ticker="AAA"))
        forecaster = state.champions.get("AAA", 20).model.forecaster
        original = forecaster.predict
        try:
            forecaster.predict = lambda rows: np.full(len(rows), 800.0)  # past float range
            state.forecasts._entries.clear()  # made before the model broke
            with caplog.at_level(logging.WARNING, logger="stockcast.serving.forecasts"):
                every = client.get("/predict/AAA")
            assert every.status_code == 200
            assert [each["horizon"] for each in every.json()["forecasts"]] == [1, 5]
            assert any("at 20 sessions" in record.getMessage() for record in caplog.records)
            alone = client.get("/predict/AAA", params={"horizon": 20})
            assert alone.status_code == 503 and "not a finite number" in alone.json()["message"]
            state.champions.get("AAA", 1).model.forecaster.predict = forecaster.predict
            state.forecasts._entries.clear()
            first_broken = client.get("/predict/AAA")
            assert first_broken.status_code == 503
        finally:
            forecaster.predict = original
            del state.champions.get("AAA", 1).model.forecaster.predict
        logged = context.store.load_forecasts(ticker="AAA")
        assert len(logged) == before + 2  # the two forecasts answered, nothing else
        assert np.isfinite(logged[["predicted_close", "lower", "upper"]].to_numpy(float)).all()
