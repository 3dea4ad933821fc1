"""A user's first day: `stockcast run` offline, twice, then the API over what it stored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import clean_environment, yahoo_unreachable

from stockcast.context import Context
from stockcast.settings import load_settings

STOCKCAST = str(Path(sys.executable).parent / "stockcast")


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STOCKCAST, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_environment(**(env or {})),
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def cycle_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cycle")


@pytest.fixture(scope="module")
def first_run(cycle_dir):
    # The default source, auto, with Yahoo made unreachable: the sample must be used.
    env = {
        "STOCKCAST_DATA_DIR": str(cycle_dir / "data"),
        "STOCKCAST_TICKERS": "AAPL,MSFT",
        "STOCKCAST_YAHOO_TIMEOUT_SECONDS": "5",
        "STOCKCAST_YAHOO_RETRIES": "0",
        **yahoo_unreachable(),
    }
    return env, run_cli("run", env=env)


# The product's defaults, which `stockcast run` used (the test session's own default is one horizon).
HORIZONS = "1,5,20"


def test_run_prints_a_forecast_per_ticker_and_horizon_and_registers_champions(first_run):
    env, result = first_run
    assert result.returncode == 0, result.stderr
    assert "Close forecasts, by sessions ahead" in result.stdout
    assert "Yahoo Finance unreachable" in result.stderr and "bundled sample" in result.stderr
    # Not a terminal: progress comes as log lines, ending with the whole of the work.
    assert "progress " in result.stderr and "(100%)" in result.stderr
    # Libraries' deprecation notices are for their developers (Feast's import used to bring
    # SQLAlchemy's, Evidently's and Litestar's back).
    assert "Warning:" not in result.stderr, result.stderr
    for ticker in ("AAPL", "MSFT"):
        assert ticker in result.stdout
    # As of Friday 1 March 2013: for Monday, Friday the 8th, and 1 April (Good Friday is no session).
    for day in ("2013-03-01", "2013-03-04", "2013-03-08", "2013-04-01"):
        assert day in result.stdout
    context = Context(
        load_settings(data_dir=env["STOCKCAST_DATA_DIR"], tickers="AAPL,MSFT", horizons=HORIZONS)
    )
    logged = context.store.load_forecasts()
    assert sorted(logged.groupby("ticker")["horizon"].apply(sorted).to_list()) == [[1, 5, 20]] * 2
    for ticker, rows in logged.groupby("ticker"):
        widths = (rows["upper"] / rows["lower"]).to_list()
        assert widths == sorted(widths) and widths[0] < widths[-1], (
            f"{ticker}: intervals widen with the horizon"
        )
    for ticker in ("AAPL", "MSFT"):
        for horizon in (1, 5, 20):
            champion = context.registry.champion(ticker, horizon)
            assert champion is not None
            assert float(champion.tags["rmse"]) <= float(champion.tags["naive_rmse"])
    # Every candidate was tested against naive; none serves without a passing test.
    decisions = context.store.load_decisions(horizon=None)
    assert len(decisions) == 6 and decisions["tests"].str.contains("DM-HLN").all()
    for decision in decisions.itertuples():
        if decision.challenger_spec != "naive()":
            assert decision.p_value_vs_naive < decision.alpha, decision.reason
        else:
            assert "naive serves" in decision.reason


def test_second_run_adds_no_duplicate_prices_or_forecasts(first_run):
    env, _ = first_run
    context = Context(
        load_settings(data_dir=env["STOCKCAST_DATA_DIR"], tickers="AAPL,MSFT", horizons=HORIZONS)
    )
    prices_before, forecasts_before = context.store.count_prices(), context.store.count_forecasts()
    again = run_cli("run", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 new forecast(s) logged" in again.stdout
    assert context.store.count_prices() == prices_before
    assert context.store.count_forecasts() == forecasts_before == 6


def test_api_serves_the_champion_and_logs_what_it_served(first_run):
    from stockcast.serving.app import create_app

    env, _ = first_run
    settings = load_settings(data_dir=env["STOCKCAST_DATA_DIR"], tickers="AAPL,MSFT", horizons=HORIZONS)
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert set(health.json()["champions"]) == {"AAPL", "MSFT"}
        answer = client.get("/predict/aapl")
        assert answer.status_code == 200
        body = answer.json()
        assert (
            body["ticker"] == "AAPL" and body["as_of"] == "2013-03-01" and body["target_date"] == "2013-03-04"
        )
        assert body["interval"]["lower"] <= body["predicted_close"] <= body["interval"]["upper"]
        assert body["model"]["name"] == "stockcast-AAPL"
        assert [each["horizon"] for each in body["forecasts"]] == [1, 5, 20]
        assert [each["target_date"] for each in body["forecasts"]] == [
            "2013-03-04",
            "2013-03-08",
            "2013-04-01",
        ]
        assert client.get("/predict/ZZZZ").status_code == 404
    logged = Context(settings).store.load_forecasts(ticker="AAPL")
    served = logged[logged["request_id"] == body["request_id"]]
    assert len(served) == 1
    assert served["predicted_close"].iloc[0] == pytest.approx(body["predicted_close"])
    assert served["origin"].iloc[0] == "api"


def test_health_and_ready_are_503_without_champions_while_live_answers(tmp_path):
    from stockcast.serving.app import create_app

    settings = load_settings(data_dir=str(tmp_path / "empty"), tickers="AAPL")
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        ready = client.get("/ready")
        live = client.get("/live")
    assert health.status_code == 503 and ready.status_code == 503
    assert live.status_code == 200  # the process is up: restarting it would not help
    assert "no champion" in " ".join(health.json()["problems"])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STOCKCAST_TICKERS": ""}, "STOCKCAST_TICKERS"),
        ({"STOCKCAST_DATABASE_URL": "nonsense"}, "STOCKCAST_DATABASE_URL"),
    ],
)
def test_bad_settings_fail_fast_in_one_line(env, expected, tmp_path):
    result = run_cli("run", env={"STOCKCAST_DATA_DIR": str(tmp_path), **env})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0]


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "ingest", "features", "train", "predict", "serve", "models"):
        assert command in result.stdout


def test_an_api_whose_database_is_away_starts_and_says_so(tmp_path):
    from stockcast.serving.app import create_app

    # Nothing listens on port 9 of loopback: the database is unreachable at start.
    settings = load_settings(
        data_dir=str(tmp_path),
        tickers="AAPL",
        database_url="postgresql+psycopg://stockcast@127.0.0.1:9/stockcast",
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert [p for p in ready.json()["problems"] if p.startswith("store")] == [ready.json()["problems"][0]]
        assert client.get("/live").status_code == 200
        assert client.get("/metrics").status_code == 200  # the monitoring gauges are just absent
