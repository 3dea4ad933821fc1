"""The performance-drift rule: a sustained rise of the rolling error over the backtest's is
drift; noise is not; too few scored forecasts conclude nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockcast.monitoring.drift import DRIFT, OK, UNKNOWN, WATCH, DriftRule, assess

RULE = DriftRule(window=20, threshold=1.5, days=5)
SIGMA = 2.0


def outcomes(errors: np.ndarray, close: float = 100.0) -> pd.DataFrame:
    """Scored forecasts of a model that predicts +0.1 each day, with the given errors."""
    predicted = np.full(len(errors), close + 0.1)
    actual = predicted + errors
    return pd.DataFrame(
        {
            "as_of": pd.bdate_range("2024-01-02", periods=len(errors)).date,
            "predicted_close": predicted,
            "last_close": close,
            "actual_close": actual,
            "error": errors,
            "naive_error": actual - close,
            "covered": np.abs(errors) <= 1.645 * SIGMA,
        }
    )


def first_drift_day(frame: pd.DataFrame) -> int | None:
    for day in range(1, len(frame) + 1):
        if assess(frame.iloc[:day], SIGMA, RULE).status == DRIFT:
            return day
    return None


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_level_shift_is_drift_within_window_plus_days(seed):
    rng = np.random.default_rng(seed)
    shift_at = 120
    errors = rng.normal(0, SIGMA, 200)
    errors[shift_at:] += 3 * SIGMA  # the market moved away from what the model learned
    day = first_drift_day(outcomes(errors))
    assert day is not None and shift_at < day <= shift_at + RULE.window + RULE.days


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_stable_series_never_drifts(seed):
    errors = np.random.default_rng(seed).normal(0, SIGMA, 250)
    assert first_drift_day(outcomes(errors)) is None


def test_a_short_run_above_is_watch_then_ok_again():
    errors = np.random.default_rng(0).normal(0, SIGMA * 0.5, 70)
    errors[40:42] = 12 * SIGMA  # two terrible days push the window above for a while
    verdicts = [
        assess(outcomes(errors).iloc[:day], SIGMA, DriftRule(window=20, threshold=1.5, days=30)).status
        for day in range(40, 71)
    ]
    assert verdicts[0] == OK and WATCH in verdicts and DRIFT not in verdicts
    assert verdicts[-1] == OK  # both days have left the window


def test_too_few_scored_forecasts_conclude_nothing():
    verdict = assess(outcomes(np.full(19, 10 * SIGMA)), SIGMA, RULE)
    assert verdict.status == UNKNOWN and "19 of 20" in verdict.reason and verdict.rolling_rmse is None


def test_figures_of_the_window():
    errors = np.array([1.0, -1.0] * 10)
    verdict = assess(outcomes(errors), 1.0, RULE)
    assert verdict.rolling_rmse == pytest.approx(1.0) and verdict.ratio == pytest.approx(1.0)
    assert verdict.mae == pytest.approx(1.0)
    # the model said "up" every day; the actual was up on the days the error was positive...
    # ...and also when it was -1 (100.1 - 1 = 99.1 is down): half right
    assert verdict.directional_accuracy == pytest.approx(0.5)
    assert verdict.rolling_naive_rmse == pytest.approx(np.sqrt(np.mean((errors + 0.1) ** 2)))
    assert verdict.coverage == 1.0


def test_no_backtest_rmse_is_unknown_not_ok():
    verdict = assess(outcomes(np.zeros(25)), None, RULE)
    assert verdict.status == UNKNOWN and verdict.rolling_rmse == 0.0


def test_at_twenty_sessions_one_shock_is_no_drift_but_a_lasting_shift_is():
    """Twenty-session forecasts made on consecutive days share 19 daily moves: one large move
    lifts 20 errors in a row. The rule at horizon h asks for h - 1 more days above the threshold
    than at one session, so that one shock's footprint is not drift; a shift that lasts is."""
    from types import SimpleNamespace

    from stockcast.monitoring.monitor import drift_rule

    context = SimpleNamespace(settings=SimpleNamespace(drift_window=20, drift_threshold=1.5, drift_days=5))
    one, twenty = drift_rule(context, 1), drift_rule(context, 20)  # type: ignore[arg-type]
    assert (one.days, twenty.days) == (5, 24)
    # One day's move, in each of the 20 forecasts spanning it: the 20-day rolling RMSE is above
    # 1.5x the backtest's on the 11 days whose window holds at least 15 of those errors.
    shock = np.full(80, 0.5 * SIGMA)
    shock[30:50] += 1.23 * SIGMA
    days_above = [assess(outcomes(shock).iloc[:day], SIGMA, twenty).days_above for day in range(20, 81)]
    assert max(days_above) == 11
    assert any(assess(outcomes(shock).iloc[:day], SIGMA, one).status == DRIFT for day in range(20, 81))
    assert all(assess(outcomes(shock).iloc[:day], SIGMA, twenty).status != DRIFT for day in range(20, 81))
    lasting = np.full(100, 0.5 * SIGMA)
    lasting[30:] += 6 * SIGMA
    assert assess(outcomes(lasting), SIGMA, twenty).status == DRIFT
