"""The packaged forecaster's intervals, including versions registered before equal-tailed ones."""

from __future__ import annotations

import numpy as np
import pytest
from tests.series import autocorrelated_bars, labelled

from stockcast.features.build import FEATURE_COLUMNS, TARGET_COLUMN
from stockcast.forecasting.predict import make_forecast
from stockcast.registry.pyfunc_model import INPUT_COLUMNS, ForecastModel, bounds_of, forecast_frame
from stockcast.training.models import NaiveForecaster, default_spec, make_forecaster


def test_every_level_is_served_nested_and_the_configured_one_is_the_interval(make_bars):
    row = labelled(make_bars(("AAA",), days=120)).iloc[-1]
    bounds = {0.5: (-0.6, 0.7), 0.8: (-1.2, 1.3), 0.9: (-1.6, 1.8)}
    model = ForecastModel(NaiveForecaster(), "naive()", "naive", bounds, 0.9)
    forecast = make_forecast("AAA", row, model, "stockcast-AAA", "3")
    assert [level for level, _, _ in forecast.intervals] == [0.5, 0.8, 0.9]
    for (_, inner_low, inner_high), (_, outer_low, outer_high) in zip(
        forecast.intervals, forecast.intervals[1:], strict=False
    ):
        assert outer_low < inner_low < forecast.predicted_close < inner_high < outer_high
    assert (forecast.lower, forecast.upper) == forecast.intervals[-1][1:]
    # Equal-tailed: the upper bound is further from the forecast where the upper quantile is.
    assert forecast.upper - forecast.predicted_close > forecast.predicted_close - forecast.lower


def test_a_version_registered_before_multi_level_intervals_still_serves_its_own(make_bars):
    """Such a pickle carries one symmetric ``interval_quantile`` at its level."""
    old = ForecastModel.__new__(ForecastModel)
    old.__dict__.update(
        forecaster=NaiveForecaster(), spec_key="naive()", kind="naive", interval_quantile=1.5, level=0.9
    )
    assert bounds_of(old) == {0.9: (-1.5, 1.5)}
    rows = labelled(make_bars(("AAA",), days=120)).tail(3)
    frame = forecast_frame(old.forecaster, bounds_of(old), old.level, rows)
    close = rows["close"].to_numpy(float)
    spread = 1.5 * np.maximum(rows["volatility_20"].to_numpy(float), 1e-4)
    assert frame["upper"].to_numpy() == pytest.approx(close * np.exp(spread))
    assert frame["lower"].to_numpy() == pytest.approx(close * np.exp(-spread))
    assert old.predict(None, rows).equals(frame)


def test_an_arima_champion_saved_and_loaded_by_mlflow_serves_what_was_fitted(tmp_path):
    """The `arima` candidate fitted by conditional least squares is packaged as the registry
    stores it (an MLflow pyfunc model), loaded back, and serves the same forecasts and
    intervals as the fitted forecaster: the backtest scores what is served."""
    import mlflow.pyfunc

    rows = labelled(autocorrelated_bars(700, phi=0.4))
    train, recent = rows.iloc[:-30], rows.tail(30)
    forecaster = make_forecaster(default_spec("arima")).fit(train[FEATURE_COLUMNS], train[TARGET_COLUMN])
    assert forecaster.weights[0] == pytest.approx(0.4, abs=0.1)
    bounds = {0.5: (-0.6, 0.7), 0.9: (-1.6, 1.8)}
    packaged = ForecastModel(forecaster, default_spec("arima").key(), "arima", bounds, 0.9)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=packaged, pip_requirements=[])
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    served = loaded.predict(recent[INPUT_COLUMNS].reset_index(drop=True))
    expected = forecast_frame(forecaster, bounds, 0.9, recent.reset_index(drop=True))
    assert list(served.columns) == list(expected.columns)
    assert np.allclose(served.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    unwrapped = loaded.unwrap_python_model().forecaster
    assert np.array_equal(unwrapped.weights, forecaster.weights) and unwrapped.mean == forecaster.mean


def test_an_xgboost_champion_is_logged_with_the_cpu_wheel_and_serves_what_was_backtested(tmp_path):
    """The `xgboost` candidate goes through the same pyfunc package as every candidate: MLflow
    loads it back and it serves exactly the fitted booster's forecasts, and the model's
    requirements name the CPU-only wheel (xgboost-cpu), never the CUDA build."""
    import mlflow.pyfunc

    from stockcast.registry.mlflow_registry import _requirements

    rows = labelled(autocorrelated_bars(700, phi=0.4))
    train, recent = rows.iloc[:-30], rows.tail(30)
    forecaster = make_forecaster(default_spec("xgboost")).fit(train[FEATURE_COLUMNS], train[TARGET_COLUMN])
    bounds = {0.9: (-1.6, 1.8)}
    packaged = ForecastModel(forecaster, default_spec("xgboost").key(), "xgboost", bounds, 0.9)
    requirements = _requirements("xgboost")
    assert any(line.startswith("xgboost-cpu==") for line in requirements), requirements
    assert not any(line.startswith("xgboost==") for line in requirements)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=packaged, pip_requirements=requirements)
    assert "xgboost-cpu==" in (tmp_path / "model" / "requirements.txt").read_text()
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    served = loaded.predict(recent[INPUT_COLUMNS].reset_index(drop=True))
    expected = forecast_frame(forecaster, bounds, 0.9, recent.reset_index(drop=True))
    assert np.allclose(served.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    assert forecaster.feature_importances() is not None
