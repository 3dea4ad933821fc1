"""The packaged forecaster's intervals, including versions registered before equal-tailed ones."""

from __future__ import annotations

import numpy as np
import pytest
from tests.series import labelled

from stockcast.forecasting.predict import make_forecast
from stockcast.registry.pyfunc_model import ForecastModel, bounds_of, forecast_frame
from stockcast.training.models import NaiveForecaster


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
