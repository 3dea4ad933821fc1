"""Feast serves the same features to training (point in time) and to the API (online)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from stockcast.context import Context
from stockcast.features.build import FEATURE_COLUMNS, MIN_HISTORY, build_features
from stockcast.features.feature_store import OFFLINE_TABLE_KEY, TIMESTAMP_FIELD, VIEW_FIELDS, offline_frame
from stockcast.features.offline import historical_training_rows, refresh_feature_store
from stockcast.pipeline import train_many
from stockcast.settings import load_settings

FAST = {"backtest_days": 60, "min_train_days": 100, "refit_every_days": 30, "models": "naive,ridge"}
NOW = datetime(2017, 6, 1, tzinfo=UTC)


@pytest.fixture
def bars(make_bars) -> pd.DataFrame:
    return make_bars(("AAA", "BBB"), days=400, start="2015-06-01")


@pytest.fixture
def context(bars) -> Context:
    context = Context(load_settings(tickers="AAA,BBB", **FAST), clock=NOW)
    context.store.upsert_prices(bars)
    return context


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def online_context(request, bars) -> Context:
    """The same context with each online store Feast is configured for by settings."""
    online = "sqlite"
    if request.param == "redis":
        online = request.getfixturevalue("redis_server")
    elif request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        name = server.create_database()
        request.addfinalizer(lambda: server.drop_database(name))
        online = server.url(name, driver="postgresql")
    settings = load_settings(tickers="AAA,BBB", feast_online_store=online, **FAST)
    context = Context(settings, clock=NOW)
    context.store.upsert_prices(bars)
    return context


def test_historical_features_equal_features_from_bars_up_to_t_even_after_later_data(context, bars):
    cut = pd.Timestamp("2016-03-01")
    with context.store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM prices WHERE date > '2016-03-01'")
    refresh_feature_store(context)
    before = historical_training_rows(context, ["AAA"])["AAA"]

    context.store.upsert_prices(bars)  # the later bars arrive and are materialized
    refresh_feature_store(context)
    after = historical_training_rows(context, ["AAA"])["AAA"]
    assert len(after) > len(before)

    reference = build_features(bars[(bars["ticker"] == "AAA") & (bars["date"] <= cut)])
    reference = reference.set_index("date")
    for frame in (before, after):
        shared = frame[frame["date"] < cut].set_index("date")  # the label of `cut` needs a later bar
        expected = reference.loc[shared.index, FEATURE_COLUMNS]
        np.testing.assert_allclose(shared[FEATURE_COLUMNS].to_numpy(float), expected.to_numpy(float))


def test_an_entity_between_closes_gets_the_previous_sessions_features(context):
    refresh_feature_store(context)
    table = context.artifacts.read_parquet(OFFLINE_TABLE_KEY)
    aaa = table[table["ticker"] == "AAA"].reset_index(drop=True)
    day, next_day = aaa.iloc[200], aaa.iloc[201]
    noon_next_day = next_day[TIMESTAMP_FIELD] - pd.Timedelta(hours=5)  # before that session's close
    entities = pd.DataFrame(
        {"ticker": ["AAA", "AAA"], TIMESTAMP_FIELD: [noon_next_day, next_day[TIMESTAMP_FIELD]]}
    )
    retrieved = context.feature_store.historical(entities)
    assert retrieved.loc[0, "log_ret_1"] == pytest.approx(day["log_ret_1"])
    assert retrieved.loc[1, "log_ret_1"] == pytest.approx(next_day["log_ret_1"])


def test_online_vector_equals_the_latest_offline_row_for_every_ticker(online_context, bars):
    context = online_context
    refresh_feature_store(context)
    online = context.feature_store.online(["AAA", "BBB"]).set_index("ticker")
    offline = offline_frame(build_features(bars))
    for ticker in ("AAA", "BBB"):
        latest = offline[offline["ticker"] == ticker].iloc[-1]
        np.testing.assert_allclose(
            online.loc[ticker, VIEW_FIELDS].to_numpy(float), latest[VIEW_FIELDS].to_numpy(float)
        )
        assert online.loc[ticker, TIMESTAMP_FIELD] == latest[TIMESTAMP_FIELD]


def test_the_online_store_says_whether_it_serves_versioned_reads_before_its_first_read(online_context):
    """Feast answers this on the first online read by importing every online store that can
    (redis and botocore among them): 0.36 s before a started API's first forecast. Answered at
    open from the store's class instead, and the answer is Feast's own."""
    import subprocess
    import sys

    refresh_feature_store(online_context)
    opened = Context(online_context.settings).feature_store.store  # opened, not read yet
    online = opened._get_provider().online_store
    assert online._versioned_read_supported is not None
    assert online._versioned_read_supported == online._is_versioned_read_supported()
    if online_context.settings.feast_online_store != "sqlite":
        return
    first_read = (
        "import sys; from stockcast.context import Context; from stockcast.settings import load_settings; "
        "features = Context(load_settings(tickers='AAA,BBB')).feature_store.online(['AAA']); "
        "assert features['ticker'].tolist() == ['AAA'] and features['event_timestamp'].notna().all(); "
        "print(sorted(name for name in sys.modules if name.startswith('feast.infra.online_stores.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", first_read], capture_output=True, text=True, check=True)
    assert "redis" not in loaded.stdout and "dynamodb" not in loaded.stdout, loaded.stdout


def test_second_refresh_materializes_only_the_new_days(online_context, bars):
    context = online_context
    with context.store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM prices WHERE date > '2016-09-30'")
    first = refresh_feature_store(context)
    assert first.materialized.first_load and first.materialized.rows == first.rows
    again = refresh_feature_store(context)
    assert again.materialized.rows == 0
    context.store.upsert_prices(bars)
    later = refresh_feature_store(context)
    new_days = bars[bars["date"] > "2016-09-30"]
    assert later.materialized.rows == len(new_days)
    assert not later.materialized.first_load


@pytest.fixture
def served(context):
    refresh_feature_store(context)
    reports, failures = train_many(context, ["AAA", "BBB"], force=True)
    assert not failures and len(reports) == 2
    from stockcast.serving.app import create_app

    # 0: the API reads the online store on every request instead of keeping a forecast for
    # STOCKCAST_FEATURE_REFRESH_SECONDS, so each write below shows in the next answer.
    with TestClient(create_app(context.settings.model_copy(update={"feature_refresh_seconds": 0}))) as client:
        yield client


def test_api_answers_from_the_online_store(served, context):
    first = served.get("/predict/AAA").json()
    changed = context.feature_store.online(["AAA"])
    changed["close"] = changed["close"] * 2
    context.feature_store.write_online(changed)
    second = served.get("/predict/AAA").json()
    assert second["as_of"] == first["as_of"]
    assert second["predicted_close"] == pytest.approx(first["predicted_close"] * 2)


def test_post_predict_matches_get(served):
    got = served.get("/predict/BBB").json()
    posted = served.post("/predict", json={"ticker": "bbb"}).json()
    assert posted["predicted_close"] == pytest.approx(got["predicted_close"])
    assert posted["request_id"] != got["request_id"]


def test_what_if_prices_are_turned_into_features_by_the_same_code(served, bars):
    closes = bars.loc[bars["ticker"] == "AAA", "close"].tail(MIN_HISTORY).tolist()
    answer = served.post("/predict", json={"ticker": "AAA", "recent_prices": closes})
    assert answer.status_code == 200
    body = answer.json()
    assert body["interval"]["lower"] < body["predicted_close"] < body["interval"]["upper"]


def test_too_few_recent_prices_is_a_422_naming_the_minimum(served):
    answer = served.post("/predict", json={"ticker": "AAA", "recent_prices": [10.0] * 5})
    assert answer.status_code == 422
    assert f"at least {MIN_HISTORY}" in answer.text


def test_features_behind_the_store_by_more_than_the_ttl_are_a_503(served, context, make_bars):
    later = make_bars(("AAA",), days=30, start="2017-01-02")
    context.store.upsert_prices(later)  # new bars, never materialized
    answer = served.get("/predict/AAA")
    assert answer.status_code == 503
    assert "stockcast features" in answer.json()["message"]


def test_unknown_ticker_is_404(served):
    assert served.get("/predict/ZZZ").status_code == 404
    assert served.post("/predict", json={"ticker": "ZZZ"}).status_code == 404


def test_a_changed_feature_view_is_reloaded_whole(context, monkeypatch):
    from stockcast.features import feature_store

    narrower = [name for name in feature_store.VIEW_FIELDS if name != "rsi_14"]
    monkeypatch.setattr(feature_store, "VIEW_FIELDS", narrower)
    refresh_feature_store(context)  # an older release's view, without rsi_14
    monkeypatch.undo()
    upgraded = refresh_feature_store(context)
    assert upgraded.materialized.first_load and upgraded.materialized.rows == upgraded.rows
    online = context.feature_store.online(["AAA"])
    assert online["rsi_14"].notna().all()
    assert refresh_feature_store(context).materialized.rows == 0  # and then incremental again
