"""The Prefect flows, run once each against Prefect's test harness (a temporary server and
database, started once per session): the daily flow reports a failing ticker while the others
are forecast; train, tune and monitor complete."""

from __future__ import annotations

import os
import tempfile

import pytest
from tests.series import autocorrelated_bars, synthetic_bars

# Prefect keeps results and its database under PREFECT_HOME: not the user's home in tests.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="stockcast-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

SETTINGS = {
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_BACKTEST_DAYS": "100",
    "STOCKCAST_MIN_TRAIN_DAYS": "150",
    "STOCKCAST_REFIT_EVERY_DAYS": "50",
}


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def price_file(tmp_path, monkeypatch):
    """Two tickers with years of bars, one (CCC) with too few to train on."""
    bars = synthetic_bars(("AAA", "BBB"), days=500)
    short = autocorrelated_bars(62, phi=0.3).assign(ticker="CCC")
    path = tmp_path / "prices.parquet"
    import pandas as pd

    pd.concat([bars, short]).drop(columns=["source"]).to_parquet(path, index=False)
    for key, value in {
        **SETTINGS,
        "STOCKCAST_SOURCE": f"file:{path}",
        "STOCKCAST_TICKERS": "AAA,BBB,CCC",
    }.items():
        monkeypatch.setenv(key, value)
    return path


def test_the_daily_flow_reports_a_failing_ticker_and_forecasts_the_rest(
    prefect_server, price_file, clickhouse_server, monkeypatch
):
    """And it ends with the analytics copy in ClickHouse; with ClickHouse away it still
    completes, saying what was not exported."""
    from tests.services import free_port

    from stockcast.orchestration import flows

    monkeypatch.setenv("STOCKCAST_CLICKHOUSE_URL", f"{clickhouse_server}/flows")
    result = flows.daily()
    assert result["exported"] == {"forecasts": 2, "monitoring": 3}
    assert sorted(item["ticker"] for item in result["forecasts"]) == ["AAA", "BBB"]
    assert set(result["failures"]) == {"CCC"} and "cannot train" in result["failures"]["CCC"]
    assert set(result["statuses"]) == {"AAA", "BBB", "CCC"}
    context = flows.current_context()
    logged = context.store.load_forecasts()
    assert sorted(logged["ticker"]) == ["AAA", "BBB"]

    monkeypatch.setenv("STOCKCAST_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port()}/flows")
    monkeypatch.setenv("STOCKCAST_DATABASE_TIMEOUT_SECONDS", "2")
    again = flows.daily()  # a rerun: nothing new ingested, the same forecasts, none logged twice
    assert [item["logged"] for item in again["forecasts"]] == [0, 0]
    assert len(context.store.load_forecasts()) == 2
    assert again["exported"].startswith("not exported: ClickHouse at") and "unreachable" in again["exported"]


def test_train_tune_and_monitor_flows_complete(prefect_server, price_file):
    from stockcast.orchestration import flows

    flows.ingest_prices(["AAA", "BBB", "CCC"])
    flows.refresh_features()
    trained = flows.train(["AAA", "CCC"])
    assert [item["ticker"] for item in trained["trained"]] == ["AAA"] and set(trained["failures"]) == {"CCC"}
    tuned = flows.tune(["BBB"], trials=2)
    assert tuned["trained"][0]["ticker"] == "BBB" and not tuned["failures"]
    decisions = flows.current_context().store.load_decisions("BBB")
    assert len(decisions) == 1
    monitored = flows.monitoring(["AAA", "BBB"])
    assert monitored["statuses"] == {"AAA": "unknown", "BBB": "unknown"}  # nothing scored yet


def test_deployments_match_the_schedules_and_prefect_yaml(price_file):
    from pathlib import Path

    import yaml

    from stockcast.orchestration import flows
    from stockcast.settings import Settings

    served = {deployment.name: deployment for deployment in flows.deployments()}
    assert set(served) == {"daily", "weekly-tuning", "train", "monitor"}
    assert served["daily"].parameters == {"only_trading_days": True}
    defaults = Settings()
    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    for deployment in manifest["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        assert (Path(__file__).resolve().parents[2] / path).exists()
        assert getattr(flows, function) in flows.FLOWS.values()
    crons = {
        item["name"]: item["schedules"][0]["cron"] for item in manifest["deployments"] if "schedules" in item
    }
    assert crons == {"daily": defaults.daily_cron, "weekly-tuning": defaults.tune_cron}


def test_the_scheduled_daily_flow_skips_exchange_holidays(prefect_server, price_file):
    from datetime import UTC, datetime

    from stockcast.orchestration import flows

    context = flows.current_context()
    context.set_clock(datetime(2024, 7, 4, 22, 30, tzinfo=UTC))  # Independence Day, a Thursday
    try:
        assert flows.daily(only_trading_days=True) == {"skipped": "not a trading day"}
    finally:
        context.set_clock(None)
    assert context.store.count_prices() == 0  # nothing was ingested
