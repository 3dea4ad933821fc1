"""SIGKILL in the middle of ingestion and of training: no handler runs, nothing is flushed.
The rerun must reach the same store as a run that was never interrupted, and a model that was
registered but not yet through the gate must never become champion."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from tests.e2e.test_daily_cycle import run_cli
from tests.faults import HeldProcess, reference_prices, sample_env, stored_prices

from stockcast.context import Context
from stockcast.settings import load_settings
from stockcast.store.database import Store

TRAINING = {
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "150",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
}


def database(folder: Path) -> str:
    return f"sqlite:///{folder / 'data' / 'stockcast.db'}"


def cli(folder: Path, *arguments: str) -> None:
    done = run_cli(*arguments, env=sample_env(folder, **TRAINING), cwd=folder)
    assert done.returncode == 0, done.stderr


@pytest.mark.fault(
    "SIGKILL during ingestion (rows sent to SQLite, commit not reached)",
    "The database passes `PRAGMA integrity_check` and holds what it held before; the rerun "
    "stores exactly what an uninterrupted run stores",
)
def test_killed_during_ingestion_the_rerun_reaches_the_same_store(tmp_path):
    folder = tmp_path / "killed"
    cli(folder, "ingest", "--tickers", "IBM")
    before = stored_prices(database(folder))

    env = sample_env(folder, STOCKCAST_FAILPOINTS="store.prices.before_commit=pause")
    held = HeldProcess(["ingest", "--tickers", "AAPL,MSFT"], env, folder)
    held.wait_for("store.prices.before_commit")
    held.kill()

    with sqlite3.connect(folder / "data" / "stockcast.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    pd.testing.assert_frame_equal(stored_prices(database(folder)), before)

    cli(folder, "ingest", "--tickers", "AAPL,MSFT")
    expected = reference_prices(tmp_path / "uninterrupted", "IBM", "AAPL,MSFT")
    pd.testing.assert_frame_equal(stored_prices(database(folder)), expected)


def outcome(folder: Path) -> dict[str, object]:
    """What a user sees of training and forecasting, without ids, versions or timestamps."""
    store = Store(database(folder))
    try:
        decisions = store.load_decisions("IBM")
        forecasts = store.load_forecasts()
    finally:
        store.dispose()
    return {
        "decisions": decisions[["promoted", "challenger_spec", "challenger_rmse", "naive_rmse"]].to_dict(
            "records"
        ),
        "forecasts": forecasts[
            ["ticker", "as_of", "target_date", "predicted_close", "lower", "upper"]
        ].to_dict("records"),
    }


@pytest.mark.fault(
    "SIGKILL during training, after the model version is registered and before the promotion gate",
    "The registered version holds no alias and no decision is recorded; the rerun trains, gates "
    "and promotes a new version; decisions and forecasts equal an uninterrupted run's",
)
def test_killed_during_training_no_half_registered_model_becomes_champion(tmp_path):
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    for folder in (killed, uninterrupted):
        cli(folder, "ingest", "--tickers", "IBM")
        cli(folder, "features")

    env = sample_env(killed, STOCKCAST_FAILPOINTS="train.registered=pause", **TRAINING)
    held = HeldProcess(["train", "--tickers", "IBM"], env, killed)
    held.wait_for("train.registered")
    held.kill()

    from mlflow import MlflowClient

    from stockcast.registry.mlflow_registry import model_name_for

    registry = Context(load_settings(data_dir=str(killed / "data"))).registry
    aliases = registry.by_alias("IBM", "champion"), registry.by_alias("IBM", "challenger")
    assert aliases == (None, None), "a version that did not pass the gate holds no alias"
    assert [str(version.version) for version in MlflowClient().search_model_versions()] == ["1"]
    assert Store(database(killed)).load_decisions("IBM").empty

    for folder in (killed, uninterrupted):
        cli(folder, "train", "--tickers", "IBM")
        cli(folder, "predict", "--tickers", "IBM")
    champion = registry.champion("IBM")
    assert champion is not None and champion.version == "2"
    first = MlflowClient().get_model_version(model_name_for("IBM"), "1")
    assert not first.aliases and "decision" not in first.tags
    assert outcome(killed) == outcome(uninterrupted)
