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
