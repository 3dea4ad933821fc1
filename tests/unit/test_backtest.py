"""Walk-forward backtests never train on the day they forecast or after it."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from tests.series import labelled

from stockcast.features.build import TARGET_COLUMN
from stockcast.modeling.intervals import conformal_quantile
from stockcast.modeling.specs import ModelSpec
from stockcast.training import backtest as backtest_module
from stockcast.training.backtest import (
    BacktestConfig,
    NotEnoughHistoryError,
    backtest_candidates,
    best_candidate,
    walk_forward,
)
from stockcast.training.models import NaiveForecaster, default_spec


class SpyForecaster(NaiveForecaster):
    """Records the dates it was trained on and the dates it was asked about."""

    fits: ClassVar[list[pd.Series]] = []
    predictions: ClassVar[list[pd.Series]] = []

    def fit(self, features, target):
        SpyForecaster.fits.append(features.index.to_series())
        return self

    def predict(self, features):
        SpyForecaster.predictions.append(features.index.to_series())
        return np.zeros(len(features))


@pytest.mark.parametrize("horizon", [1, 5, 20])
def test_no_fit_sees_a_label_its_origins_do_not_know(make_bars, monkeypatch, horizon):
    """At horizon h the label of row i is the close of row i + h: every row a model is fitted on
    has its label known at the first origin it forecasts (i + h <= origin)."""
    rows = labelled(make_bars(("AAA",), days=700), horizon)
    SpyForecaster.fits, SpyForecaster.predictions = [], []
    monkeypatch.setattr(backtest_module, "make_forecaster", lambda spec, seed=0, horizon=1: SpyForecaster())
    config = BacktestConfig(
        test_days=120, refit_every_days=15, min_train_days=200, calibration_days=40, horizon=horizon
    )
    walk_forward(rows, ModelSpec("spy"), config)
    assert len(SpyForecaster.fits) == len(SpyForecaster.predictions) == int(np.ceil(160 / 15))
    for trained_on, asked_about in zip(SpyForecaster.fits, SpyForecaster.predictions, strict=True):
        assert trained_on.max() + horizon <= asked_about.min()
        # The newest label that is known is used: no more of a gap than the horizon needs.
        assert trained_on.max() + horizon == asked_about.min()


@pytest.mark.parametrize("horizon", [1, 5, 20])
def test_a_forecast_and_its_intervals_are_unchanged_by_labels_dated_after_its_origin(make_bars, horizon):
    """No leak, by its definition: rewrite every label whose date (row + h) lies after origin t and
    the forecast and every interval bound made at t stay exactly as they were. Training on, or
    calibrating with, one such label would move them (a gap shorter than h does)."""
    rows = labelled(make_bars(("AAA",), days=700, seed=3), horizon)
    config = BacktestConfig(
        test_days=100, refit_every_days=25, min_train_days=200, calibration_days=40, horizon=horizon
    )
    before = walk_forward(rows, default_spec("ridge"), config).forecasts
    # A refit's first origin in the scored window: its model's newest labels are right at it.
    position = len(rows) - config.test_days - config.calibration_days + 3 * config.refit_every_days
    origin = rows["date"].iloc[position]
    changed = rows.copy()
    unknown = np.arange(len(rows)) + horizon > position  # labels dated after the origin
    noise = np.random.default_rng(0).normal(0.0, 0.05, int(unknown.sum()))
    changed.loc[unknown, TARGET_COLUMN] = noise
    after = walk_forward(changed, default_spec("ridge"), config).forecasts
    columns = ["predicted_close", *[column for column in before if column.startswith(("lower", "upper"))]]
    at_or_before = before["date"] <= origin
    pd.testing.assert_frame_equal(before.loc[at_or_before, columns], after.loc[at_or_before, columns])
    # ...while the later origins, which may know those labels, do move: the test can see a leak.
    assert not np.allclose(before.loc[~at_or_before, "upper"], after.loc[~at_or_before, "upper"])


def test_scored_window_is_the_last_test_days(make_bars):
    rows = labelled(make_bars(("AAA",), days=700))
    config = BacktestConfig(test_days=100, refit_every_days=25, min_train_days=200, calibration_days=50)
    result = walk_forward(rows, default_spec("ridge"), config)
    assert len(result.forecasts) == 100
    assert result.forecasts["date"].iloc[-1] == rows["date"].iloc[-1]
    assert (result.forecasts["cutoff"] <= result.forecasts["date"]).all()


def test_naive_backtest_has_zero_skill_and_no_directional_calls(make_bars):
    rows = labelled(make_bars(("AAA",), days=700))
    result = walk_forward(rows, default_spec("naive"), BacktestConfig(test_days=100, min_train_days=200))
    assert result.metrics["skill_vs_naive"] == pytest.approx(0.0)
    assert np.isnan(result.metrics["directional_accuracy"])
    assert result.metrics["rmse"] == pytest.approx(result.metrics["naive_rmse"])


def test_too_little_history_is_refused_with_the_numbers(make_bars):
    rows = labelled(make_bars(("AAA",), days=300))
    with pytest.raises(NotEnoughHistoryError, match="needs 560"):
        walk_forward(rows, default_spec("naive"), BacktestConfig())
    with pytest.raises(NotEnoughHistoryError, match=r"needs 579 .*19 between training and its first origin"):
        walk_forward(
            labelled(make_bars(("AAA",), days=300), 20), default_spec("naive"), BacktestConfig(horizon=20)
        )


def test_conformal_intervals_reach_their_level_on_a_long_series(make_bars):
    rows = labelled(make_bars(("AAA",), days=2600, seed=11))
    config = BacktestConfig(
        test_days=2000, refit_every_days=50, min_train_days=250, calibration_days=100, level=0.9
    )
    result = walk_forward(rows, default_spec("ridge"), config)
    assert abs(result.metrics["coverage"] - 0.9) <= 0.03


def test_conformal_quantile_is_finite_sample_corrected():
    errors = np.arange(1, 10, dtype=float)  # nine errors
    assert conformal_quantile(errors, 0.8) == 8.0  # rank ceil(10 * 0.8) = 8
    assert conformal_quantile(errors, 0.95) == float("inf")
    assert conformal_quantile(np.array([]), 0.9) == float("inf")


def test_a_model_with_real_signal_beats_naive(make_bars):
    """Returns that follow yesterday's return: ridge must find it, naive cannot."""
    bars = make_bars(("AAA",), days=900)
    rng = np.random.default_rng(3)
    log_returns = np.zeros(900)
    for day in range(1, 900):
        log_returns[day] = 0.5 * log_returns[day - 1] + rng.normal(0, 0.01)
    close = 50 * np.exp(np.cumsum(log_returns))
    bars["close"] = close
    bars["open"] = close
    bars["high"] = close * 1.005
    bars["low"] = close * 0.995
    rows = labelled(bars)
    config = BacktestConfig(test_days=250, min_train_days=250, calibration_days=60)
    results = backtest_candidates(rows, [default_spec("naive"), default_spec("ridge")], config)
    assert best_candidate(results).spec.kind == "ridge"
    assert results[default_spec("ridge").key()].metrics["skill_vs_naive"] > 0.05


def test_intervals_keep_their_level_when_volatility_changes_regime(make_bars):
    """Calm then turbulent: a fixed-width interval would under-cover the turbulent half."""
    bars = make_bars(("AAA",), days=2600, seed=12)
    rng = np.random.default_rng(12)
    volatility = np.where(np.arange(2600) < 1500, 0.008, 0.025)
    close = 40 * np.exp(np.cumsum(rng.normal(0, 1, 2600) * volatility))
    bars["open"], bars["close"], bars["high"], bars["low"] = close, close, close * 1.002, close * 0.998
    rows = labelled(bars)
    config = BacktestConfig(
        test_days=2000, refit_every_days=50, min_train_days=250, calibration_days=100, level=0.9
    )
    frame = walk_forward(rows, default_spec("naive"), config).forecasts
    turbulent = frame[frame["date"] > rows["date"].iloc[1520]]
    covered = (turbulent["actual_close"] >= turbulent["lower"]) & (
        turbulent["actual_close"] <= turbulent["upper"]
    )
    assert abs(covered.mean() - 0.9) <= 0.03


def test_a_short_history_at_a_long_horizon_is_refused_or_judged_on_naive_alone(make_bars):
    """Too little history for the candidates: the naive forecast alone, over the origins left
    after the horizon's gap; too little even for that: refused with the numbers, never a crash."""
    from stockcast.training.backtest import MIN_NAIVE_DAYS, run_backtests

    config = BacktestConfig(horizon=30)
    rows = labelled(make_bars(("AAA",), days=200), 30)
    results = run_backtests(rows, [default_spec("naive"), default_spec("ridge")], config, seed=0)
    assert list(results) == ["naive()"]
    assert len(results["naive()"].forecasts) > 0
    with pytest.raises(NotEnoughHistoryError, match=f"at least {MIN_NAIVE_DAYS + 29} needed"):
        run_backtests(rows.head(MIN_NAIVE_DAYS + 20), [default_spec("naive")], config, seed=0)
