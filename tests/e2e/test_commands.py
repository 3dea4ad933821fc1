"""Each stage is its own command: ingest, features, train, predict, models list."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stockcast.cli import app

FAST = {
    "STOCKCAST_SOURCE": "sample",
    "STOCKCAST_TICKERS": "MSFT,IBM",
    "STOCKCAST_START_DATE": "2008-01-01",
    "STOCKCAST_BACKTEST_DAYS": "100",
    "STOCKCAST_REFIT_EVERY_DAYS": "50",
    "STOCKCAST_MODELS": "naive,ridge",
}


@pytest.fixture
def cli(monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_stages_one_command_at_a_time(cli, isolated_environment):
    ingested = cli("ingest")
    assert ingested.exit_code == 0, ingested.output
    assert "MSFT:" in ingested.output and "source sample" in ingested.output
    assert "raw batch kept at" in ingested.output

    featured = cli("features")
    assert featured.exit_code == 0, featured.output
    assert (isolated_environment / "data" / "artifacts" / "features" / "daily_features.parquet").exists()

    trained = cli("train")
    assert trained.exit_code == 0, trained.output
    assert "promoted to champion" in trained.output

    predicted = cli("predict")
    assert predicted.exit_code == 0, predicted.output
    assert "2013-03-04" in predicted.output and "2 new forecast(s) logged" in predicted.output

    listed = cli("models", "list")
    assert listed.exit_code == 0
    assert "MSFT" in listed.output and "IBM" in listed.output


def test_ingest_reports_a_ticker_the_source_lacks_and_exits_non_zero(cli):
    result = cli("ingest", "--tickers", "MSFT,TSLA")
    assert result.exit_code == 1
    assert "TSLA" in result.output and "not in the bundled sample" in result.output


def test_predict_without_a_champion_says_what_to_run(cli):
    assert cli("ingest").exit_code == 0
    result = cli("predict")
    assert result.exit_code == 1
    assert "run `stockcast train` first" in result.output


def test_features_without_prices_says_what_to_run(cli):
    result = cli("features")
    assert result.exit_code == 1
    assert "stockcast ingest" in result.output


# -- what schedulers (Airflow) call -----------------------------------------------------------------
def last_json(output: str) -> dict:
    import json

    return json.loads(output.strip().splitlines()[-1])


def test_sessions_names_the_tickers_whose_exchange_trades_that_day(cli):
    holiday = cli("sessions", "--tickers", "AAPL,BMW.DE", "--date", "2024-07-04", "--json")
    assert holiday.exit_code == 0, holiday.output
    assert last_json(holiday.output) == {"dates": ["2024-07-04"], "trading": ["BMW.DE"], "closed": ["AAPL"]}
    weekend = cli("sessions", "--tickers", "AAPL,BMW.DE", "--date", "2024-07-06", "--json")
    assert last_json(weekend.output)["trading"] == []
    bad = cli("sessions", "--date", "2024-13-01")
    assert bad.exit_code == 2 and "not a date in YYYY-MM-DD form" in bad.output
    beyond = cli("sessions", "--tickers", "AAPL", "--date", "1900-01-02")
    assert beyond.exit_code == 2 and "outside the XNYS calendar" in beyond.output


def test_ingest_partial_ok_carries_on_with_the_tickers_it_stored(cli):
    partial = cli("ingest", "--tickers", "MSFT,TSLA", "--partial-ok", "--json")
    assert partial.exit_code == 0, partial.output
    outcome = last_json(partial.output)
    assert outcome["stored"] == ["MSFT"] and "not in the bundled sample" in outcome["failures"]["TSLA"]
    nothing = cli("ingest", "--tickers", "TSLA", "--partial-ok", "--json")
    assert nothing.exit_code == 1 and last_json(nothing.output)["stored"] == []


def test_train_when_busy_skip_passes_a_ticker_another_process_trains(cli, monkeypatch):
    from stockcast.settings import load_settings
    from stockcast.store.database import Store

    assert cli("ingest").exit_code == 0 and cli("features").exit_code == 0
    store = Store(load_settings().resolved_database_url)
    assert store.try_acquire_lease("MSFT", "stockcast run on host-1 pid 4242", "token", 600)[0]
    monkeypatch.setenv("STOCKCAST_TRAINING_LEASE_WAIT_SECONDS", "0")

    waited = cli("train", "--tickers", "MSFT")
    assert (
        waited.exit_code == 1 and "MSFT is being trained by stockcast run on host-1 pid 4242" in waited.output
    )
    skipped = cli("train", "--tickers", "MSFT,IBM", "--when-busy", "skip")
    assert skipped.exit_code == 0, skipped.output
    assert "MSFT is being trained by" in skipped.output and "not trained by this run" in skipped.output
    assert "IBM" in skipped.output and "promoted to champion" in skipped.output
    store.dispose()


def test_a_fail_once_point_fails_the_first_run_and_lets_the_retry_through(cli, monkeypatch, tmp_path):
    assert cli("ingest").exit_code == 0 and cli("features").exit_code == 0
    marker = tmp_path / "failed-once"
    monkeypatch.setenv("STOCKCAST_FAILPOINTS", f"train.computing=fail-once:{marker}")
    first = cli("train", "--tickers", "MSFT")
    assert first.exit_code == 1 and "injected failure" in first.output and marker.exists()
    retried = cli("train", "--tickers", "MSFT")
    assert retried.exit_code == 0 and "promoted to champion" in retried.output
