"""Candidate models behave as their definitions say, on series with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from tests.series import autocorrelated_bars, labelled

from stockcast.features.build import TARGET_COLUMN
from stockcast.training.backtest import BacktestConfig, backtest_candidates, walk_forward
from stockcast.training.models import DEFAULT_PARAMS, default_spec, make_forecaster


def test_arima_recovers_an_autoregressive_coefficient(make_bars):
    rows = labelled(autocorrelated_bars(1500, phi=0.4))
    model = make_forecaster(default_spec("arima")).fit(rows, rows[TARGET_COLUMN])
    # ARMA(1,1) fitted to an AR(1): its autoregressive form puts ~0.4 on yesterday's return.
    assert model.weights[0] == pytest.approx(0.4, abs=0.08)
    assert np.abs(model.weights[3:]).max() < 0.05
    predicted = model.predict(rows.tail(5))
    assert np.allclose(
        predicted, model.mean + (rows.tail(5)["log_ret_1"] - model.mean) * model.weights[0], atol=0.002
    )


def test_drift_forecasts_the_average_training_return(make_bars):
    rows = labelled(make_bars(("AAA",), days=300, drift=0.002))
    model = make_forecaster(default_spec("drift")).fit(rows, rows[TARGET_COLUMN])
    assert np.allclose(model.predict(rows.head(3)), rows[TARGET_COLUMN].mean())


@pytest.mark.parametrize("kind", ["ridge", "lightgbm", "arima", "xgboost"])
def test_models_that_can_learn_momentum_beat_naive_on_it(make_bars, kind):
    rows = labelled(autocorrelated_bars(1100, phi=0.5))
    config = BacktestConfig(test_days=250, min_train_days=300, calibration_days=60, refit_every_days=50)
    results = backtest_candidates(rows, [default_spec("naive"), default_spec(kind)], config)
    assert results[default_spec(kind).key()].metrics["skill_vs_naive"] > 0.05


@pytest.mark.parametrize("kind", sorted(DEFAULT_PARAMS))
def test_every_candidate_gives_finite_forecasts_inside_its_interval(make_bars, kind):
    rows = labelled(make_bars(("AAA",), days=700))
    result = walk_forward(
        rows, default_spec(kind), BacktestConfig(test_days=100, min_train_days=250, refit_every_days=50)
    )
    frame = result.forecasts
    assert np.isfinite(frame[["predicted_close", "lower", "upper"]].to_numpy()).all()
    assert (frame["lower"] <= frame["predicted_close"]).all() and (
        frame["predicted_close"] <= frame["upper"]
    ).all()
    assert 0.75 <= result.metrics["coverage"] <= 1.0
