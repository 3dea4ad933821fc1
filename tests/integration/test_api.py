"""The serving API: every route's success and failure, auth, the error shape, hot reload of
champions, metrics, request ids and access logs."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.series import autocorrelated_bars, regime_flip_bars

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.lifecycle.promote import promote
from stockcast.pipeline import train_many
from stockcast.settings import load_settings

KEY = "k-0123456789abcdef-test"
SETTINGS = {"backtest_days": 100, "min_train_days": 150, "refit_every_days": 50, "models": "naive,ridge"}


def train_on(context: Context, bars) -> str:
    context.store.upsert_prices(bars)
    refresh_feature_store(context)
    reports, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    return reports[0].version


@pytest.fixture
def context():
    return Context(
        load_settings(
            tickers="AAA", api_keys=f"{KEY},another-key-0123456789", batch_max_tickers=3, **SETTINGS
        )
    )


@pytest.fixture
def versions(context):
    """Two versions: momentum ridge first, then naive promoted over it on the reversal."""
    first = train_on(context, autocorrelated_bars(600, phi=0.6))
    second = train_on(context, regime_flip_bars())
    assert context.registry.champion("AAA").version == second
    return first, second


@pytest.fixture
def client(context, versions):
    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        yield client


def test_errors_have_one_shape(client):
    missing = client.get("/predict/ZZZ")
    assert missing.status_code == 404
    assert set(missing.json()) == {"code", "message", "details"} and missing.json()["code"] == "not_found"
    invalid = client.post("/predict", json={"nope": 1})
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"
    assert "ticker" in invalid.json()["message"]


def test_batch_answers_each_ticker_or_its_error(client):
    answer = client.post("/predict/batch", json={"tickers": ["AAA", "zzz", "aaa"]})
    assert answer.status_code == 200
    results = {item["ticker"]: item for item in answer.json()["results"]}
    assert set(results) == {"AAA", "ZZZ"}
    assert results["AAA"]["forecast"]["ticker"] == "AAA" and results["AAA"]["error"] is None
    assert results["ZZZ"]["error"]["code"] == "not_found"
    too_many = client.post("/predict/batch", json={"tickers": ["A", "B", "C", "D"]})
    assert too_many.status_code == 422 and "at most 3" in too_many.json()["message"]
    # The contract says so, so a client following the schema is never refused for its length.
    schema = client.get("/openapi.json").json()["components"]["schemas"]["BatchRequest"]
    assert schema["properties"]["tickers"]["maxItems"] == 3


def test_predictions_are_paged_and_filtered(client):
    served = [client.get("/predict/AAA").json()["request_id"] for _ in range(3)]
    first = client.get("/predictions", params={"ticker": "aaa", "limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_offset"] == 2
    second = client.get("/predictions", params={"ticker": "AAA", "limit": 2, "offset": 2}).json()
    assert second["next_offset"] is None
    listed = [item["request_id"] for item in first["items"] + second["items"]]
    assert sorted(listed) == sorted(served)
    assert all(item["actual_close"] is None for item in first["items"])
    assert client.get("/predictions", params={"from": "2100-01-01"}).json()["items"] == []
    assert client.get("/predictions", params={"from": "not-a-date"}).status_code == 422


def test_models_show_champion_and_challenger(client, versions):
    _, second = versions
    everything = client.get("/models").json()
    assert [entry["ticker"] for entry in everything] == ["AAA"]
    aaa = client.get("/models/aaa").json()
    assert aaa["champion"]["version"] == second and aaa["served_version"] == second
    assert aaa["champion"]["kind"] == "naive" and aaa["champion"]["rmse"] > 0
    assert set(aaa["champion"]["coverage_by_level"]) == {"50", "80", "90"}
    assert aaa["champion"]["rmsse"] > 0 and aaa["champion"]["msis"] > 0
    # The reversal took ridge's edge: its champion no longer beat naive, and the decision says
    # so; the first decision carries the test that promoted ridge.
    newest, first = aaa["decisions"][0], aaa["decisions"][-1]
    assert "no longer beats naive significantly" in newest["reason"] and newest["alpha"] == 0.05
    assert first["test_vs_naive"] == "DM-HLN" and first["p_value_vs_naive"] < 0.05
    assert client.get("/models/ZZZ").status_code == 404


def test_rollback_needs_a_valid_key_and_takes_effect_at_once(client, versions):
    first, _ = versions
    assert client.post("/models/AAA/rollback").status_code == 401
    assert (
        client.post("/models/AAA/rollback", headers={"X-API-Key": "wrong-key-0123456789"}).status_code == 403
    )
    answer = client.post("/models/AAA/rollback", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200 and answer.json()["champion_version"] == first
    assert client.get("/predict/AAA").json()["model"]["version"] == first
    again = client.post("/models/AAA/rollback", headers={"X-API-Key": KEY})
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_a_promotion_elsewhere_is_picked_up_by_the_refresher_thread(context, versions):
    """Nothing but the API's own refresher thread (STOCKCAST_CHAMPION_REFRESH_SECONDS) looks at
    the registry again: no request, no route and no hand-made call reloads the champion here."""
    import threading
    import time

    from stockcast.serving.app import create_app

    first, second = versions
    settings = context.settings.model_copy(update={"champion_refresh_seconds": 0.2})
    with TestClient(create_app(settings)) as client:
        assert client.get("/predict/AAA").json()["model"]["version"] == second
        assert "champion-refresher" in [thread.name for thread in threading.enumerate()]
        promote(context, "AAA", first, force=True)  # as `stockcast models promote --force` would
        served, deadline = second, time.monotonic() + 10  # the default interval is 30 s
        while served != first and time.monotonic() < deadline:
            time.sleep(0.1)
            served = client.get("/predict/AAA").json()["model"]["version"]
        assert served == first, "the refresher thread did not load the new champion within 10 s"
        assert client.get("/models/AAA").json()["served_version"] == first
        assert (
            'stockcast_champion_version{horizon="1",ticker="AAA"} ' + f"{float(first)}"
            in client.get("/metrics").text
        )


def sample_value(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_forecasts_and_champions(client, versions):
    ok = 'stockcast_http_requests_total{method="GET",route="/predict/{ticker}",status="200"}'
    missing = 'stockcast_http_requests_total{method="GET",route="/predict/{ticker}",status="404"}'
    served = f'stockcast_forecasts_served_total{{horizon="1",model_version="{versions[1]}",origin="api",ticker="AAA"}}'
    before = client.get("/metrics").text
    client.get("/predict/AAA")
    client.get("/predict/ZZZ")
    after = client.get("/metrics").text
    for line, increase in ((ok, 1), (missing, 1), (served, 1)):
        assert sample_value(after, line) - sample_value(before, line) == increase
    assert sample_value(after, 'stockcast_champion_version{horizon="1",ticker="AAA"}') == float(versions[1])
    assert sample_value(after, "stockcast_model_load_seconds_count") >= 1
    assert (
        'stockcast_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/predict/{ticker}"}'
        in after
    )


def test_request_ids_and_access_log_lines(client):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("stockcast.access")
    access.addHandler(handler)
    try:
        echoed = client.get("/predict/AAA", headers={"X-Request-ID": "trace-42", "X-API-Key": KEY})
        generated = client.get("/health")
    finally:
        access.removeHandler(handler)
    assert echoed.headers["X-Request-ID"] == "trace-42"
    assert len(generated.headers["X-Request-ID"]) == 32
    from stockcast.serving.observability import JsonFormatter

    lines = [json.loads(JsonFormatter().format(record)) for record in records]
    assert {line["path"] for line in lines} == {"/predict/AAA", "/health"}
    assert {"method", "path", "status", "duration_ms", "request_id"} <= set(lines[0])
    assert all(KEY not in json.dumps(line) for line in lines)


def test_reads_can_require_a_key(context, versions):
    from stockcast.serving.app import create_app

    context.settings.read_requires_key = True
    with TestClient(create_app(context.settings)) as client:
        assert client.get("/predict/AAA").status_code == 401
        assert client.get("/predict/AAA", headers={"X-API-Key": KEY}).status_code == 200
        assert client.get("/health").status_code == 200  # probes stay open


def test_placeholder_api_keys_are_refused_at_start():
    from stockcast.settings import SettingsError

    with pytest.raises(SettingsError, match="STOCKCAST_API_KEYS"):
        load_settings(api_keys="change-me")


def test_training_job_runs_in_the_background_and_its_promotion_is_served(client, context, versions):
    assert client.post("/train", json={"tickers": ["AAA"]}).status_code == 401
    assert client.post("/train", json={"tickers": ["ZZZ"]}, headers={"X-API-Key": KEY}).status_code == 404
    # The prices move back to momentum: the ridge spec wins the gate again.
    context.store.upsert_prices(autocorrelated_bars(600, phi=0.6))
    refresh_feature_store(context)
    accepted = client.post("/train", json={}, headers={"X-API-Key": KEY})
    assert accepted.status_code == 202 and accepted.json()["status"] in {"queued", "running"}
    job_id = accepted.json()["id"]
    client.app.state.serving.jobs.wait(job_id, timeout=120)
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["finished_at"]
    trained = job["result"]["trained"][0]
    assert trained["ticker"] == "AAA" and trained["promoted"] and trained["version"] not in versions
    assert client.get("/models/AAA").json()["served_version"] == trained["version"]
    assert client.get("/predict/AAA").json()["model"]["version"] == trained["version"]
    assert client.get("/jobs/nope").status_code == 404


def test_trainings_of_one_ticker_never_overlap(client, context, versions):
    from stockcast.jobs.local import LocalJobRunner

    runner: LocalJobRunner = client.app.state.serving.jobs
    ids = [runner.submit_training(["AAA"]) for _ in range(2)]
    for job_id in ids:
        runner.wait(job_id, timeout=120)
    spans = [context.store.get_job(job_id) for job_id in ids]
    assert all(span["status"] == "succeeded" for span in spans)
    earlier, later = sorted(spans, key=lambda span: span["started_at"])
    assert earlier["finished_at"] <= later["started_at"]


def test_forecast_routes_are_rate_limited_per_client(context, versions):
    from stockcast.serving.app import create_app

    context.settings.rate_limit_per_minute = 2
    with TestClient(create_app(context.settings)) as client:
        assert [client.get("/predict/AAA").status_code for _ in range(2)] == [200, 200]
        limited = client.get("/predict/AAA")
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) == 30
        # another client (its own key) has its own allowance; other routes are not limited
        assert client.get("/predict/AAA", headers={"X-API-Key": KEY}).status_code == 200
        assert client.get("/models/AAA").status_code == 200


def test_every_served_forecast_is_logged_with_its_features(client, context):
    closes = [50.0 + 0.1 * day for day in range(60)]
    served = [
        client.get("/predict/AAA").json(),
        client.post("/predict", json={"ticker": "aaa"}).json(),
        client.post("/predict", json={"ticker": "AAA", "recent_prices": closes}).json(),
        *[
            item["forecast"]
            for item in client.post("/predict/batch", json={"tickers": ["AAA"]}).json()["results"]
        ],
    ]
    logged = context.store.load_forecasts(ticker="AAA").set_index("request_id")
    assert set(logged.index) == {answer["request_id"] for answer in served}
    for answer in served:
        row = logged.loc[answer["request_id"]]
        assert row["predicted_close"] == answer["predicted_close"]
        assert row["model_version"] == answer["model"]["version"]
        assert str(row["as_of"]) == answer["as_of"]
        assert json.loads(row["features"])["ret_lag_1"] is not None
        levels = [interval["level"] for interval in answer["intervals"]]
        assert levels == [0.5, 0.8, 0.9] and answer["intervals"][-1] == answer["interval"]
        for inner, outer in zip(answer["intervals"], answer["intervals"][1:], strict=False):
            assert outer["lower"] <= inner["lower"] < inner["upper"] <= outer["upper"]
        stored = [[level, lower, upper] for level, lower, upper in json.loads(row["intervals"])]
        assert stored == [[item["level"], item["lower"], item["upper"]] for item in answer["intervals"]]
    assert logged.loc[served[2]["request_id"], "origin"] == "what-if"
    assert served[2]["predicted_close"] != served[0]["predicted_close"]


def test_a_forecast_that_cannot_be_logged_is_not_served(client, context):
    from sqlalchemy import text

    assert client.get("/predict/AAA").status_code == 200
    with context.store.engine.begin() as connection:
        connection.execute(text("ALTER TABLE forecasts RENAME TO forecasts_away"))
    try:
        refused = client.get("/predict/AAA")
        batch = client.post("/predict/batch", json={"tickers": ["AAA"]})
    finally:
        with context.store.engine.begin() as connection:
            connection.execute(text("ALTER TABLE forecasts_away RENAME TO forecasts"))
    assert refused.status_code == 503 and refused.json()["code"] == "unavailable"
    assert "not served" in refused.json()["message"] and "predicted_close" not in refused.text
    assert batch.status_code == 503
    assert len(context.store.load_forecasts(ticker="AAA")) == 1
    assert client.get("/predict/AAA").status_code == 200


def _what_if(client, prices_json: str, **headers):
    """POST /predict with the prices as written (json.dumps cannot spell 1.7976931348623157e308
    apart from Python's float, and 1.8e308 reads back as infinity)."""
    return client.post(
        "/predict",
        content=f'{{"ticker": "AAA", "recent_prices": {prices_json}}}',
        headers={"content-type": "application/json", **headers},
    )


def test_what_if_prices_must_be_plausible(client, context):
    """Issue 19: absurd but positive closes were a 503 'could not be logged' (infinite features)
    with nothing in the log, or a 200 whose upper bound or forecast was null."""
    from stockcast.serving.schemas import MAX_PRICE, MAX_RECENT_PRICES, MIN_PRICE

    absurd = {
        "subnormal and the largest float": "[" + ", ".join(["5e-324", "1.7976931348623157e308"] * 30) + "]",
        "the largest float": "[" + ", ".join(["1.7976931348623157e308"] * 60) + "]",
        "1e308": "[" + ", ".join(["1e308"] * 60) + "]",
        "1e200 then 1e-200": "[" + ", ".join(["1e200", "1e-200"] * 30) + "]",
        "just above the bound": "[" + ", ".join([repr(MAX_PRICE * 1.01)] * 60) + "]",
        "just below the bound": "[" + ", ".join([repr(MIN_PRICE * 0.99)] * 60) + "]",
        "too many": "[" + ", ".join(["100.0"] * (MAX_RECENT_PRICES + 1)) + "]",
    }
    for case, prices in absurd.items():
        refused = _what_if(client, prices)
        assert refused.status_code == 422, (case, refused.text)
        assert refused.json()["code"] == "invalid_request" and "recent_prices" in refused.json()["message"]
    assert "less than or equal to 1000000000" in _what_if(client, absurd["the largest float"]).text
    assert context.store.load_forecasts(ticker="AAA").empty  # none of them logged

    # The contract says so: a client (or a fuzzer) following the schema sends plausible closes.
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ForecastRequest"]
    prices = schema["properties"]["recent_prices"]["anyOf"][0]
    assert prices["items"] == {"type": "number", "minimum": MIN_PRICE, "maximum": MAX_PRICE}
    assert (
        prices["maxItems"] == MAX_RECENT_PRICES
        and "1,000,000,000" in schema["properties"]["recent_prices"]["description"]
    )

    # The extremes of the bound, alternating: answered with finite numbers throughout.
    extremes = _what_if(client, json.dumps([MIN_PRICE, MAX_PRICE] * 30))
    assert extremes.status_code == 200, extremes.text
    answer = extremes.json()
    bounds = [answer["predicted_close"], answer["interval"]["lower"], answer["interval"]["upper"]]
    bounds += [value for each in answer["intervals"] for value in (each["lower"], each["upper"])]
    assert all(isinstance(value, float) and math.isfinite(value) for value in bounds), answer


def test_a_forecast_that_is_not_a_finite_number_is_neither_served_nor_logged(client, context, monkeypatch):
    """Whatever the closes, a model can still overflow: a forecast or an interval bound that is
    not a finite number is a 422 naming it for a what-if (the posted closes did it), a 503 for
    the online features (the server's data or model did), and never logged."""
    state = client.app.state.serving
    forecaster = state.champions.get("AAA").model.forecaster
    closes = json.dumps([50.0 + 0.1 * day for day in range(60)])
    assert _what_if(client, closes).status_code == 200
    assert state.join_warm_up()
    logged = len(context.store.load_forecasts(ticker="AAA"))

    def log_return(value: float):
        return lambda rows: np.full(len(rows), value)

    with monkeypatch.context() as patch:  # undone before the API's shutdown snapshot pickles it
        # A log return past float range: every price is infinite.
        patch.setattr(forecaster, "predict", log_return(800.0), raising=False)
        overflowing = _what_if(client, closes)
        assert overflowing.status_code == 422 and overflowing.json()["code"] == "invalid_request"
        assert "not a finite number" in overflowing.json()["message"]
        assert "predicted_close" in overflowing.json()["message"]
        state.forecasts._entries.clear()  # the kept forecast was made before the model broke
        online = client.get("/predict/AAA")
        assert online.status_code == 503 and "not a finite number" in online.json()["message"]
        assert "from its online features" in online.json()["message"]

        # The point forecast just inside float range, upper bounds past it (issue 19's null).
        patch.setattr(
            forecaster, "predict", log_return(np.log(1.7975e308 / (50.0 + 0.1 * 59))), raising=False
        )
        upper_only = _what_if(client, closes)
        assert upper_only.status_code == 422, upper_only.text
        message = upper_only.json()["message"]
        assert "interval.upper" in message and "intervals[0.9].upper" in message
        assert "predicted_close" not in message and "interval.lower" not in message
    assert len(context.store.load_forecasts(ticker="AAA")) == logged


def test_server_errors_are_logged_with_their_cause_and_request_id(client, context, caplog, monkeypatch):
    """Issue 19: a 503 'could not be logged' left nothing in the server log to say why."""
    from sqlalchemy import text

    caplog.set_level(logging.ERROR, logger="stockcast.serving")
    with context.store.engine.begin() as connection:
        connection.execute(text("ALTER TABLE forecasts RENAME TO forecasts_away"))
    try:
        refused = client.get("/predict/AAA", headers={"X-Request-ID": "trace-503"})
    finally:
        with context.store.engine.begin() as connection:
            connection.execute(text("ALTER TABLE forecasts_away RENAME TO forecasts"))
    assert refused.status_code == 503
    [record] = [record for record in caplog.records if "trace-503" in record.getMessage()]
    line = record.getMessage()
    assert "GET /predict/AAA answered 503" in line and "could not be logged" in line
    assert "no such table: forecasts" in line and record.fields["request_id"] == "trace-503"

    # An error nobody expected: 500 in the usual shape, the traceback and request id logged.
    from stockcast.serving.routes import models as models_routes

    def broken(*args, **kwargs):
        raise RuntimeError("the registry answered nonsense")

    monkeypatch.setattr(models_routes, "_ticker_models", broken)
    caplog.clear()
    unexpected = TestClient(client.app, raise_server_exceptions=False).get(
        "/models/AAA", headers={"X-Request-ID": "trace-500"}
    )
    assert unexpected.status_code == 500 and unexpected.json()["code"] == "internal_error"
    assert unexpected.json()["details"] == {"request_id": "trace-500"}
    assert "the registry answered nonsense" not in unexpected.text  # the cause stays in the log
    [record] = [record for record in caplog.records if "trace-500" in record.getMessage()]
    assert "RuntimeError: the registry answered nonsense" in record.getMessage() and record.exc_info


def test_newly_materialized_features_are_served_within_the_refresh_window(client, context):
    import time

    before = client.get("/predict/AAA").json()
    bars = context.store.load_prices(["AAA"])
    newest = bars.iloc[[-1]].copy()
    newest["date"] = newest["date"] + pd.offsets.BDay(1)
    newest["close"] = newest["close"] * 1.02
    newest["high"] = newest[["high", "close"]].max(axis=1)
    context.store.upsert_prices(newest)
    refresh_feature_store(context)
    kept = client.get("/predict/AAA").json()
    assert kept["as_of"] == before["as_of"] and kept["predicted_close"] == before["predicted_close"]
    state = client.app.state.serving
    assert state.join_warm_up()
    cache, window = state.forecasts, context.settings.feature_refresh_seconds
    cache.clock = lambda: time.monotonic() + window * 1.5  # the refresh window has passed
    # Within the second window the kept forecast answers while one read refreshes it behind...
    assert client.get("/predict/AAA").json()["as_of"] == before["as_of"]
    cache.read("AAA", state.champions.of("AAA")).result(timeout=30)
    fresh = client.get("/predict/AAA").json()
    assert fresh["as_of"] == newest["date"].iloc[0].date().isoformat()
    assert fresh["target_date"] > before["target_date"]
    # ...and past it a request waits for the read: what it gets is never older than two windows.
    following = newest.copy()
    following["date"] = following["date"] + pd.offsets.BDay(1)
    context.store.upsert_prices(following)
    refresh_feature_store(context)
    cache.clock = lambda: time.monotonic() + window * 5
    assert client.get("/predict/AAA").json()["as_of"] == following["date"].iloc[0].date().isoformat()


def test_a_refresh_that_finds_the_same_features_keeps_the_forecasts_it_made(client, context, monkeypatch):
    """Between two days' bars every refresh reads the vector it read before: its forecasts are
    kept, re-stamped, instead of every champion being applied again (at 50 tickers that had
    been 0.1 s of Python per window, stalling the requests served beside it)."""
    import time

    from stockcast.serving import forecasts

    state = client.app.state.serving
    before = client.get("/predict/AAA").json()
    assert state.join_warm_up()
    cache, window, champions = (
        state.forecasts,
        context.settings.feature_refresh_seconds,
        state.champions.of("AAA"),
    )
    kept = cache.get("AAA", champions)
    made, prepare = [], forecasts.prepare
    monkeypatch.setattr(forecasts, "prepare", lambda *args: made.append(args) or prepare(*args))
    cache.clock = lambda: time.monotonic() + window * 1.5
    refreshed = cache.read("AAA", champions).result(timeout=30)
    assert made == [] and refreshed.fetched_at > kept.fetched_at
    assert refreshed.by_horizon == kept.by_horizon and refreshed.rendered is kept.rendered
    assert cache.get("AAA", champions) is refreshed  # fresh again: no read until the next window
    again = client.get("/predict/AAA").json()
    assert (
        again["predicted_close"] == before["predicted_close"] and again["request_id"] != before["request_id"]
    )

    bars = context.store.load_prices(["AAA"])
    newest = bars.iloc[[-1]].copy()
    newest["date"] = newest["date"] + pd.offsets.BDay(1)
    context.store.upsert_prices(newest)
    refresh_feature_store(context)  # a new vector: every champion is applied to it
    cache.clock = lambda: time.monotonic() + window * 3.5
    remade = cache.read("AAA", champions).result(timeout=30)
    assert remade.by_horizon[1].forecast.as_of > kept.by_horizon[1].forecast.as_of and len(made) == 1


def test_requests_share_one_online_read_and_do_not_wait_for_a_refresh(client, context, tmp_path, monkeypatch):
    """Under load every request used to miss together at the end of each window and read the
    online store itself: the p99 was 5x the bare endpoint's (benchmarks/results.md)."""
    import time

    from stockcast.failpoints import VARIABLE

    state = client.app.state.serving
    served = client.get("/predict/AAA").json()
    assert state.join_warm_up()
    cache, window = state.forecasts, context.settings.feature_refresh_seconds
    reads = cache.reads
    release = tmp_path / "release"
    monkeypatch.setenv(VARIABLE, f"serving.forecast_read=wait:{release}")  # the read is held
    cache.clock = lambda: time.monotonic() + window * 1.5
    answers = [client.get("/predict/AAA") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert {answer.json()["predicted_close"] for answer in answers} == {served["predicted_close"]}
    assert len({answer.json()["request_id"] for answer in answers}) == 5  # each answer logged as its own
    assert cache.reads == reads + 1  # one read started for the five, still held

    cache.clock = lambda: time.monotonic() + window * 5  # too old to serve: requests join the read
    champions = state.champions.of("AAA")
    joined = [cache.lookup("AAA", champions) for _ in range(16)]
    assert all(waiting is joined[0] for waiting in joined) and not joined[0].done()
    release.touch()
    assert joined[0].result(timeout=30).by_horizon[1].forecast.predicted_close == served["predicted_close"]
    assert cache.reads == reads + 1
    assert client.get("/predict/AAA").status_code == 200 and cache.reads == reads + 1


def test_a_failed_refresh_is_not_hidden_by_the_kept_forecast(client, context):
    import time

    from fastapi import HTTPException

    state = client.app.state.serving
    assert client.get("/predict/AAA").status_code == 200
    assert state.join_warm_up()
    later = context.store.load_prices(["AAA"]).iloc[[-1]].copy()
    later["date"] = later["date"] + pd.offsets.BDay(10)
    context.store.upsert_prices(later)  # stored, but the online features are not materialized
    cache, window = state.forecasts, context.settings.feature_refresh_seconds
    cache.clock = lambda: time.monotonic() + window * 1.5
    kept = client.get("/predict/AAA")
    assert kept.status_code == 200  # answered while the read behind finds the features stale
    with pytest.raises(HTTPException, match="stockcast features"):
        cache.read("AAA", state.champions.of("AAA")).result(timeout=30)
    stale = client.get("/predict/AAA")
    assert stale.status_code == 503 and "stockcast features" in stale.json()["message"]


def test_liveness_and_readiness(client):
    assert client.get("/live").json() == {"status": "alive"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["champions"] == client.get("/health").json()["champions"]


def _bare_state(context: Context):
    """A serving state as the API's start-up builds it, before any background check."""
    from stockcast.serving.forecasts import ForecastCache
    from stockcast.serving.observability import Metrics
    from stockcast.serving.security import ApiKeys
    from stockcast.serving.state import ChampionCache, ServingState

    metrics = Metrics()
    state = ServingState(
        context=context,
        champions=ChampionCache(context, context.settings.tickers, metrics),
        metrics=metrics,
        keys=ApiKeys([]),
        snapshot=context.settings.data_dir / "serving" / "snapshot.pkl",
    )
    state.forecasts = ForecastCache(state, context.settings.feature_refresh_seconds)
    return state


def test_a_first_start_is_ready_with_its_first_forecasts_made_or_after_a_bound(
    context, versions, monkeypatch
):
    """Without a snapshot there is no forecast to serve until the feature store has opened:
    ready before then, the first requests all waited for it (p99 665 ms over the first 10 s of
    load, against 9 ms warm). A first start is ready once its first forecasts are made, or after
    FIRST_START_WAIT_SECONDS if the feature store is slow, the warm-up going on behind."""
    import threading
    import time

    from stockcast.features.feature_store import FeatureStoreAdapter
    from stockcast.serving import app as serving

    assert not (context.settings.data_dir / "serving" / "snapshot.pkl").exists()
    with TestClient(serving.create_app(context.settings)) as client:
        state = client.app.state.serving
        assert state.forecasts.warm and state.forecasts.get("AAA", state.champions.of("AAA")) is not None
        assert client.get("/predict/AAA").status_code == 200 and state.forecasts.reads == 0

    (context.settings.data_dir / "serving" / "snapshot.pkl").unlink()
    opened, online = threading.Event(), FeatureStoreAdapter.online
    monkeypatch.setattr(
        FeatureStoreAdapter, "online", lambda self, tickers: opened.wait(30) and online(self, tickers)
    )
    monkeypatch.setattr(serving, "FIRST_START_WAIT_SECONDS", 0.5)
    start = time.monotonic()
    with TestClient(serving.create_app(context.settings)) as client:
        assert time.monotonic() - start < 20  # ready although the feature store has not answered
        state = client.app.state.serving
        assert not state.forecasts.warm and client.get("/ready").status_code == 200
        opened.set()
        assert client.get("/predict/AAA").status_code == 200
        assert state.join_warm_up() and state.forecasts.warm


def test_a_restart_serves_the_last_champions_until_the_registry_is_checked(context, versions):
    from stockcast.serving.app import create_app

    first, second = versions
    with TestClient(create_app(context.settings)) as client:
        served = client.get("/predict/AAA").json()
    promote(context, "AAA", first, force=True)  # while the API is down

    restarted = _bare_state(Context(context.settings))
    assert restarted.restore_snapshot()
    assert restarted.champions.versions() == {"AAA": second}
    kept = restarted.forecasts.get("AAA", restarted.champions.of("AAA"))
    assert kept is not None and kept.by_horizon[1].forecast.predicted_close == served["predicted_close"]

    assert restarted.champions.refresh() == ["AAA"]  # what the background check does
    assert restarted.champions.versions() == {"AAA": first}
    assert restarted.forecasts.get("AAA", restarted.champions.of("AAA")) is None  # made by the old one

    with TestClient(create_app(context.settings)) as client:
        assert client.get("/ready").status_code == 200
        answer = client.get("/predict/AAA")
        assert answer.status_code == 200
    logged = context.store.load_forecasts(ticker="AAA").set_index("request_id")
    assert answer.json()["request_id"] in logged.index


def test_a_foreign_or_corrupt_snapshot_is_ignored(context, versions, tmp_path):
    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)):
        pass
    other_registry = context.settings.model_copy(
        update={"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'other.db'}"}
    )
    assert not _bare_state(Context(other_registry)).restore_snapshot()
    snapshot = context.settings.data_dir / "serving" / "snapshot.pkl"
    snapshot.write_bytes(b"not a pickle")
    assert not _bare_state(Context(context.settings)).restore_snapshot()
    with TestClient(create_app(context.settings)) as client:  # starts the slow way instead
        assert client.get("/predict/AAA").status_code == 200
