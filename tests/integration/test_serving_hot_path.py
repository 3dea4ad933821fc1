"""GET /predict's hot path (issue 23): the answer rendered once per kept forecast is exactly what
its response model writes, with fresh request ids that are each logged; the route reads its
parameters itself and refuses what FastAPI would, with the same words; the forecast log wakes
the event loop once per commit and never hides a failure; the access log is written whole."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from tests.series import synthetic_bars

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.pipeline import train_many
from stockcast.serving.schemas import ForecastResponse
from stockcast.settings import load_settings

SETTINGS = {
    "tickers": "AAA",
    "horizons": "1,5",
    "backtest_days": 100,
    "min_train_days": 150,
    "refit_every_days": 50,
    "models": "naive,ridge",
}


@pytest.fixture
def context() -> Context:
    context = Context(load_settings(**SETTINGS))
    context.store.upsert_prices(synthetic_bars(("AAA",), days=500, seed=23))
    refresh_feature_store(context)
    _, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    return context


@pytest.fixture
def client(context):
    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        yield client


def test_the_kept_answer_is_what_the_response_model_writes_with_fresh_logged_ids(client, context):
    answers = [client.get("/predict/AAA") for _ in range(3)] + [client.get("/predict/aaa?horizon=5")]
    logged = context.store.load_forecasts(ticker="AAA", horizon=None).set_index("request_id")
    seen: set[str] = set()
    for answer in answers:
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        parsed = ForecastResponse.model_validate_json(answer.content)
        # Byte for byte what FastAPI would have written from the model.
        assert parsed.model_dump_json().encode() == answer.content
        ids = [each.request_id for each in parsed.forecasts]
        assert parsed.request_id == ids[0] and len(set(ids)) == len(ids)
        assert not seen & set(ids)  # a kept forecast is answered with new ids each time
        seen |= set(ids)
        for each in parsed.forecasts:
            row = logged.loc[each.request_id]
            assert (row["horizon"], row["predicted_close"], row["origin"]) == (
                each.horizon,
                each.predicted_close,
                "api",
            )
            assert str(row["target_date"]) == each.target_date.isoformat()
            assert json.loads(row["intervals"])[-1] == [
                each.interval.level,
                each.interval.lower,
                each.interval.upper,
            ]
            assert uuid.UUID(each.request_id).version == 7
    assert [each.horizon for each in ForecastResponse.model_validate_json(answers[0].content).forecasts] == [
        1,
        5,
    ]
    assert [each.horizon for each in ForecastResponse.model_validate_json(answers[-1].content).forecasts] == [
        5
    ]
    assert set(logged.index) == seen  # every forecast answered is logged, and nothing else


@pytest.mark.parametrize("value", ["0", "61", "abc", "", "1.5", "-3"])
def test_the_horizon_query_is_refused_as_fastapi_refuses_a_declared_one(client, value):
    """GET /predict reads ``horizon`` itself; /predictions declares the same parameter the usual
    way: both refuse the same values with the same words."""
    ours = client.get(f"/predict/AAA?horizon={value}")
    declared = client.get(f"/predictions?horizon={value}")
    assert ours.status_code == declared.status_code == 422
    assert ours.json() == declared.json()


def test_the_last_horizon_given_counts_and_other_parameters_are_ignored(client):
    answer = client.get("/predict/AAA?horizon=1&horizon=5&unknown=x")
    assert answer.status_code == 200
    assert [each["horizon"] for each in answer.json()["forecasts"]] == [5]
    unserved = client.get("/predict/AAA?horizon=20")
    assert (
        unserved.status_code == 404 and "served horizons (sessions ahead): 1, 5" in unserved.json()["message"]
    )


def test_route_labels_come_from_the_route_that_answered(client):
    client.get("/predict/AAA")
    client.get("/predict/AAA?horizon=0")
    client.get("/nowhere")
    text = client.get("/metrics").text
    for labels in (
        'method="GET",route="/predict/{ticker}",status="200"',
        'method="GET",route="/predict/{ticker}",status="422"',
        'method="GET",route="unmatched",status="404"',
    ):
        assert f"stockcast_http_requests_total{{{labels}}} 1.0" in text
    assert "stockcast_forecast_log_rows_per_commit_count" in text


def test_every_request_gets_an_access_line_by_shutdown(context, capsys):
    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        paths = ["/predict/AAA", "/health", "/predict/ZZZ"] * 5
        ids = [client.get(path).headers["X-Request-ID"] for path in paths]
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if '"stockcast.access"' in line
    ]
    assert [line["request_id"] for line in lines if line["request_id"] in ids] == ids
    assert {line["status"] for line in lines} >= {200, 404}


def test_the_forecast_log_wakes_waiters_per_commit_and_reports_each_failure(context, monkeypatch):
    from stockcast.serving.forecast_log import ForecastLog
    from stockcast.store.database import ForecastRow, Logged

    store = context.store
    calls: list[int] = []
    append = store.append_forecasts

    def counted(entries):
        calls.append(len(entries))
        return append(entries)

    monkeypatch.setattr(store, "append_forecasts", counted)
    record = {
        "ticker": "AAA",
        "as_of": date(2024, 1, 2),
        "target_date": date(2024, 1, 3),
        "predicted_close": 10.0,
        "last_close": 10.0,
        "lower": 9.0,
        "upper": 11.0,
        "level": 0.9,
        "model_name": "m",
        "model_version": "1",
        "model_kind": "naive",
        "features": "{}",
        "horizon": 1,
    }
    good, bad = ForecastRow(record), ForecastRow({**record, "ticker": None})
    committed: list[tuple[float, int]] = []
    writer = ForecastLog(lambda: store, observe=lambda seconds, rows: committed.append((seconds, rows)))

    async def gather(rows: list[tuple[ForecastRow, str]]) -> list[BaseException | None]:
        now = datetime.now(UTC)

        async def one(row: ForecastRow, name: str) -> BaseException | None:
            try:
                await writer.write([Logged(row, name, "api", now)])
            except Exception as error:
                return error
            return None

        return list(await asyncio.gather(*(one(row, name) for row, name in rows)))

    try:
        together = asyncio.run(gather([(good, f"w{n}") for n in range(200)]))
        shared_commits = len(calls)
        mixed = asyncio.run(gather([(good, "x1"), (bad, "bad"), (good, "x2")]))
    finally:
        writer.close()
    assert together == [None] * 200
    assert shared_commits < 200 and sum(rows for _, rows in committed) == 200  # waiting together, one commit
    assert all(seconds >= 0 for seconds, _ in committed)
    assert mixed[0] is None and mixed[2] is None and "null" in str(mixed[1]).lower()
    stored = set(store.load_forecasts(ticker="AAA")["request_id"])
    assert {f"w{n}" for n in range(200)} | {"x1", "x2"} <= stored and "bad" not in stored


def test_native_telemetry_is_on_only_when_opentelemetry_is_configured(monkeypatch):
    from stockcast.serving.app import _native_telemetry

    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    assert _native_telemetry() == {"tracing": False, "metrics": False, "logs": False}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert _native_telemetry() == {}


def test_a_warm_up_gives_way_and_restores_the_interpreter():
    import gc
    import sys

    from stockcast.serving.state import WARM_UP_SWITCH_SECONDS, _giving_way

    before = sys.getswitchinterval()
    assert gc.isenabled()
    with _giving_way():
        with _giving_way():  # two apps warming up in one process
            assert not gc.isenabled() and sys.getswitchinterval() == pytest.approx(WARM_UP_SWITCH_SECONDS)
        assert not gc.isenabled()
    assert gc.isenabled() and sys.getswitchinterval() == pytest.approx(before)


def test_a_read_still_waiting_at_shutdown_is_answered_not_left_hanging(client, monkeypatch):
    from fastapi import HTTPException

    state = client.app.state.serving
    cache = state.forecasts
    monkeypatch.setattr(cache._readers, "submit", lambda *args: None)  # the batch never starts
    waiting = cache.read("AAA", state.champions.of("AAA"))
    cache.close()
    with pytest.raises(HTTPException, match="shutting down"):
        waiting.result(timeout=5)
