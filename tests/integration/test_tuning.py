"""`stockcast train --tune N` runs seeded Optuna studies and logs them to MLflow."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from tests.series import autocorrelated_bars, labelled
from typer.testing import CliRunner

from stockcast.cli import app
from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.settings import load_settings
from stockcast.training.backtest import BacktestConfig
from stockcast.training.tuning import tune, tuning_window


@pytest.mark.parametrize("horizon", [1, 5, 20])
def test_tuning_never_sees_the_gates_window(make_bars, horizon):
    """Not a day of the gate's window, nor a label dated in it: at horizon h the label of a row
    is the close h sessions later, so the tuner's last row is h sessions before the gate's
    first origin."""
    rows = labelled(make_bars(("AAA",), days=700), horizon)
    config = BacktestConfig(
        test_days=100, min_train_days=200, calibration_days=50, refit_every_days=50, horizon=horizon
    )
    window = tuning_window(rows, config)
    first_origin = len(rows) - config.test_days
    assert len(window) + horizon - 1 == first_origin  # its newest label is dated at that origin
    assert window["date"].max() == rows["date"].iloc[first_origin - horizon]
    # And with a history just long enough, it still tunes at every horizon.
    assert tune(rows, "ridge", trials=1, config=config) is not None


def test_tuning_is_seeded_and_finds_a_strong_ridge_on_momentum(make_bars):
    rows = labelled(autocorrelated_bars(900, phi=0.5))
    config = BacktestConfig(test_days=150, min_train_days=200, calibration_days=50, refit_every_days=50)
    first = tune(rows, "ridge", trials=5, config=config, seed=3)
    again = tune(rows, "ridge", trials=5, config=config, seed=3)
    assert first is not None and again is not None
    assert first.best_spec == again.best_spec
    assert first.trials == 5
    assert np.isfinite(first.best_rmse)
    assert tune(rows, "naive", trials=5, config=config) is None  # nothing to tune


def test_train_tune_5_logs_a_study_per_tunable_candidate(make_bars, monkeypatch):
    """XGBoost included: tuned in its own search space, backtested, logged and put before the
    gate like every candidate."""
    settings = {
        "TICKERS": "AAA",
        "MODELS": "naive,ridge,arima,xgboost",
        "BACKTEST_DAYS": "100",
        "MIN_TRAIN_DAYS": "150",
        "REFIT_EVERY_DAYS": "50",
    }
    for key, value in settings.items():
        monkeypatch.setenv(f"STOCKCAST_{key}", value)
    context = Context(load_settings())
    context.store.upsert_prices(autocorrelated_bars(700, phi=0.4))
    refresh_feature_store(context)
    result = CliRunner().invoke(app, ["train", "--tune", "5"])
    assert result.exit_code == 0, result.output
    runs = mlflow.search_runs(experiment_names=["stockcast"], filter_string="tags.stage = 'tune'")
    assert sorted(runs["tags.candidate"]) == ["arima", "ridge", "xgboost"]
    assert (runs["metrics.trials"] == 5).all()
    xgboost_runs = mlflow.search_runs(
        experiment_names=["stockcast"], filter_string="tags.candidate = 'xgboost'"
    )
    backtested = xgboost_runs[xgboost_runs["tags.stage"] != "tune"]  # the default and the tuned spec
    assert len(backtested) == 2 and np.isfinite(backtested["metrics.rmse"]).all()
    assert set(backtested["params.kind"]) == {"xgboost"}
    decision = context.store.load_decisions("AAA").iloc[-1]
    assert "xgboost(" in decision["tests"], "the gate weighed the xgboost candidate"
    artifacts = mlflow.MlflowClient().list_artifacts(runs["run_id"].iloc[0])
    assert any(item.path == "optimization_history.png" for item in artifacts)
