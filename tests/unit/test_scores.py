"""Equal-tailed conformal intervals and the scale-free scores of forecasts and intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stockcast.modeling.intervals import (
    DEFAULT_LEVELS,
    conformal_quantile,
    equal_tailed_quantiles,
    interval_levels,
    level_key,
    online_equal_tailed,
)
from stockcast.training.metrics import (
    insample_naive_scales,
    interval_score,
    interval_scores,
    msis,
    pinball_loss,
    rmsse,
)

LEVELS = (0.5, 0.8, 0.9)


# --- level naming ---------------------------------------------------------------------------


def test_level_key_is_the_whole_percentage():
    """Column keys are whole percentages, also for numpy floats and float noise."""
    assert level_key(0.9) == "90"
    assert level_key(0.5) == "50"
    assert level_key(np.float64(0.8)) == "80"
    assert level_key(0.9000000001) == "90"


def test_interval_levels_add_the_configured_level_once_and_in_order():
    """The configured level joins the defaults, sorted, without a near-duplicate of 0.9."""
    assert DEFAULT_LEVELS == (0.5, 0.8, 0.9)
    assert interval_levels(0.9) == (0.5, 0.8, 0.9)
    assert interval_levels(0.9000000001) == (0.5, 0.8, 0.9)
    assert interval_levels(0.95) == (0.5, 0.8, 0.9, 0.95)
    assert interval_levels(0.7) == (0.5, 0.7, 0.8, 0.9)


def test_interval_levels_reject_a_level_outside_zero_one():
    """A level of 1 or more has no finite interval and is refused."""
    with pytest.raises(ValueError, match="between 0 and 1"):
        interval_levels(1.0)


# --- equal-tailed order statistics ------------------------------------------------------------


def test_equal_tailed_quantiles_pick_the_corrected_order_statistics():
    """With n = 9 and n = 19 the ranks are whole or half numbers that are easy to check."""
    rng = np.random.default_rng(1)
    nine = rng.permutation(np.arange(1.0, 10.0))  # sorted: 1, 2, ..., 9, so rank k is k
    # L = 0.5: k_lo = floor(10 * 0.25) = floor(2.5) = 2, k_hi = ceil(10 * 0.75) = ceil(7.5) = 8
    assert equal_tailed_quantiles(nine, 0.5) == (2.0, 8.0)
    # L = 0.8: k_lo = floor(10 * 0.1) = 1, k_hi = ceil(10 * 0.9) = 9: the extremes
    assert equal_tailed_quantiles(nine, 0.8) == (1.0, 9.0)

    nineteen = rng.permutation(np.arange(1.0, 20.0)) * 10.0  # sorted: 10, 20, ..., 190
    # L = 0.5: k_lo = floor(20 * 0.25) = 5, k_hi = ceil(20 * 0.75) = 15
    assert equal_tailed_quantiles(nineteen, 0.5) == (50.0, 150.0)
    # L = 0.9: k_lo = floor(20 * 0.05) = 1, k_hi = ceil(20 * 0.95) = 19; 20 * 0.95 is not exactly
    # 19 in binary floats, and the rank must still be 19, not 20 (which would be +inf).
    assert equal_tailed_quantiles(nineteen, 0.9) == (10.0, 190.0)


def test_equal_tailed_quantiles_are_unbounded_when_there_are_too_few_scores():
    """A rank past either end of the sorted scores gives an infinite bound."""
    eight = np.arange(1.0, 9.0)
    # L = 0.8, n = 8: k_lo = floor(9 * 0.1) = 0 < 1, k_hi = ceil(9 * 0.9) = ceil(8.1) = 9 > 8
    assert equal_tailed_quantiles(eight, 0.8) == (-math.inf, math.inf)
    # L = 0.5, n = 2: k_lo = floor(3 * 0.25) = 0, k_hi = ceil(3 * 0.75) = ceil(2.25) = 3 > 2
    assert equal_tailed_quantiles(np.array([-1.0, 1.0]), 0.5) == (-math.inf, math.inf)
    # L = 0.5, n = 4: k_lo = floor(5 * 0.25) = 1, k_hi = ceil(5 * 0.75) = 4: finite again
    assert equal_tailed_quantiles(np.array([3.0, -2.0, 0.5, 1.0]), 0.5) == (-2.0, 3.0)
    assert equal_tailed_quantiles(np.array([]), 0.9) == (-math.inf, math.inf)


def test_online_bounds_equal_the_batch_quantiles_of_the_earlier_scores():
    """Origin i of the online pass is calibrated on exactly scores[:i]."""
    scores = np.random.default_rng(2).standard_t(3, size=200)
    bounds = online_equal_tailed(scores, LEVELS)
    for level in LEVELS:
        lower, upper = bounds[level]
        assert lower.shape == upper.shape == scores.shape
        for i in range(len(scores)):
            assert (lower[i], upper[i]) == equal_tailed_quantiles(scores[:i], level)
    assert bounds[0.9][0][0] == -math.inf
    assert bounds[0.9][1][0] == math.inf


def test_online_bounds_ignore_the_origin_itself_and_later_scores():
    """Changing scores[i:] leaves the bounds of every origin up to and including i unchanged."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=300)
    before = online_equal_tailed(scores, LEVELS)
    for i in (0, 1, 37, 150, 299):
        changed = scores.copy()
        changed[i:] = rng.normal(loc=5.0, scale=10.0, size=len(scores) - i)
        after = online_equal_tailed(changed, LEVELS)
        for level in LEVELS:
            for side in (0, 1):
                np.testing.assert_array_equal(after[level][side][: i + 1], before[level][side][: i + 1])


def test_levels_from_the_same_scores_are_nested_at_every_origin():
    """The 50% interval lies inside the 80%, which lies inside the 90%, at every origin."""
    scores = np.random.default_rng(4).standard_t(2, size=1_000)
    bounds = online_equal_tailed(scores, LEVELS)
    (lo50, hi50), (lo80, hi80), (lo90, hi90) = (bounds[level] for level in LEVELS)
    assert np.all(lo90 <= lo80)
    assert np.all(lo80 <= lo50)
    assert np.all(lo50 <= hi50)
    assert np.all(hi50 <= hi80)
    assert np.all(hi80 <= hi90)


def test_online_equal_tailed_rejects_nan_scores():
    """A NaN score cannot be ordered and would silently corrupt every later bound."""
    with pytest.raises(ValueError, match="NaN"):
        online_equal_tailed(np.array([0.1, np.nan, 0.3]), LEVELS)


def test_equal_tailed_intervals_miss_equally_on_each_side_of_skewed_scores():
    """On right-skewed i.i.d. scores each tail misses about (1 - L) / 2, unlike a symmetric interval.

    For i.i.d. continuous scores the rank of each new score among those before it is uniform
    and independent of the earlier ranks, so the tail misses are independent Bernoulli draws:
    with 8,000 origins the 1.5-point tail tolerance is about 3.1 standard deviations at L = 0.5
    and 6.2 at L = 0.9 (the seed is fixed, so the test is deterministic).
    """
    rng = np.random.default_rng(0)
    scores = rng.gamma(shape=2.0, scale=1.0, size=8_000) - 2.0  # mean 0, long right tail
    bounds = online_equal_tailed(scores, LEVELS)
    for level in LEVELS:
        tail = (1.0 - level) / 2.0
        lower, upper = bounds[level]
        miss_below = np.mean(scores < lower)
        miss_above = np.mean(scores > upper)
        assert abs((1.0 - miss_below - miss_above) - level) <= 0.02
        assert abs(miss_below - tail) <= 0.015
        assert abs(miss_above - tail) <= 0.015

        # The symmetric interval of the same level, +-q of |score|, also calibrated online:
        # its total coverage is right too, but its misses are lopsided: at 90% nearly all fall
        # above (the long tail), at 50% more fall below (the dense side near the mode).
        half_width = np.array([conformal_quantile(np.abs(scores[:i]), level) for i in range(len(scores))])
        sym_below = np.mean(scores < -half_width)
        sym_above = np.mean(scores > half_width)
        assert abs((1.0 - sym_below - sym_above) - level) <= 0.02
        assert max(abs(sym_below - tail), abs(sym_above - tail)) > 0.015
        assert abs(sym_above - sym_below) > 0.03


def test_insample_naive_scales_by_hand():
    """Closes 10, 12, 11, 14 change by +2, -1, +3."""
    mse, mae = insample_naive_scales(np.array([10.0, 12.0, 11.0, 14.0]))
    assert mse == pytest.approx((4.0 + 1.0 + 9.0) / 3.0)  # 14 / 3
    assert mae == pytest.approx((2.0 + 1.0 + 3.0) / 3.0)  # 2


def test_insample_naive_scales_need_two_closes():
    """One close has no change to measure."""
    for history in (np.array([]), np.array([100.0])):
        mse, mae = insample_naive_scales(history)
        assert math.isnan(mse)
        assert math.isnan(mae)


def test_rmsse_by_hand():
    """Errors -1 and +2: MSE (1 + 4) / 2 = 2.5; sqrt(2.5 / 10) = 0.5."""
    assert rmsse(np.array([10.0, 12.0]), np.array([11.0, 10.0]), 10.0) == pytest.approx(0.5)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_rmsse_and_msis_are_nan_without_a_positive_finite_scale(scale):
    """A flat or broken history gives no scale, and no score rather than a misleading one."""
    actual = np.array([1.0, 2.0])
    assert math.isnan(rmsse(actual, actual + 1.0, scale))
    assert math.isnan(msis(actual, actual - 1.0, actual + 1.0, 0.9, scale))


def test_rmsse_of_the_naive_forecast_on_a_random_walk_is_about_one():
    """Out of sample, tomorrow = today errs on a random walk as much as it did in sample."""
    rng = np.random.default_rng(6)
    closes = 100.0 + np.cumsum(rng.normal(scale=1.5, size=10_000))
    history, future = closes[:5_000], closes[4_999:]
    mse, _ = insample_naive_scales(history)
    # The naive forecast of future[t + 1] is future[t]; future[0] is the last close of history.
    assert rmsse(future[1:], future[:-1], mse) == pytest.approx(1.0, abs=0.05)


def test_pinball_loss_by_hand():
    """tau = 0.1, actual 10 against quantile forecasts 8, 10, 13.

    y - q = 2, 0, -3; losses 0.1 * 2 = 0.2, 0, 0.9 * 3 = 2.7; mean 2.9 / 3.
    """
    loss = pinball_loss(np.array([10.0, 10.0, 10.0]), np.array([8.0, 10.0, 13.0]), 0.1)
    assert loss == pytest.approx(2.9 / 3.0)


def test_interval_score_by_hand_with_a_miss_below_and_a_miss_above():
    """80% intervals [9, 11], so alpha = 0.2 and a miss costs 2 / 0.2 = 10 per unit.

    actual 10 is inside: 2; 8.5 is 0.5 below: 2 + 10 * 0.5 = 7; 11.2 is 0.2 above: 2 + 10 * 0.2 = 4.
    Mean (2 + 7 + 4) / 3 = 13 / 3; MSIS with an in-sample MAE of 2 is 13 / 6.
    """
    actual = np.array([10.0, 8.5, 11.2])
    lower = np.full(3, 9.0)
    upper = np.full(3, 11.0)
    assert interval_score(actual, lower, upper, 0.8) == pytest.approx(13.0 / 3.0)
    assert msis(actual, lower, upper, 0.8, 2.0) == pytest.approx(13.0 / 6.0)


def test_interval_score_is_the_pinball_losses_of_its_bounds_times_two_over_alpha():
    """A known identity, checked on random intervals: IS = (2 / alpha)(QS_lo + QS_hi)."""
    rng = np.random.default_rng(7)
    actual = rng.normal(size=500)
    lower = rng.normal(loc=-1.0, size=500)
    upper = lower + rng.exponential(2.0, size=500)
    level = 0.8
    alpha = 1.0 - level
    pinballs = pinball_loss(actual, lower, alpha / 2.0) + pinball_loss(actual, upper, 1.0 - alpha / 2.0)
    assert interval_score(actual, lower, upper, level) == pytest.approx((2.0 / alpha) * pinballs)


def test_interval_scores_of_a_frame_by_hand():
    """Two levels over actuals 10, 8.5, 11.2 with an in-sample MAE of 2.

    80%: [9, 11]. Coverage 1/3. Lower bound at tau 0.1: y - q = 1, -0.5, 2.2 -> 0.1, 0.45, 0.22,
    sum 0.77; upper at tau 0.9: y - q = -1, -2.5, 0.2 -> 0.1, 0.25, 0.18, sum 0.53. Mean of the two
    mean losses (0.77 + 0.53) / 6 = 1.3 / 6, scaled 1.3 / 12. MSIS 13 / 6 (previous test).
    50%: [9.5, 10.5]. Coverage 1/3. Lower at tau 0.25: y - q = 0.5, -1, 1.7 -> 0.125, 0.75, 0.425,
    sum 1.3; upper at tau 0.75: y - q = -0.5, -2, 0.7 -> 0.125, 0.5, 0.525, sum 1.15. Scaled
    pinball 2.45 / 12. Interval score, 2 / alpha = 4: 1, 1 + 4 * 1 = 5, 1 + 4 * 0.7 = 3.8, mean
    9.8 / 3, MSIS 9.8 / 6. Mean scaled pinball (1.3 + 2.45) / 24 = 0.15625.
    Point forecasts 10: errors 0, -1.5, 1.2, MSE (2.25 + 1.44) / 3 = 1.23; sqrt(1.23 / 4.92) = 0.5.
    """
    frame = pd.DataFrame(
        {
            "actual_close": [10.0, 8.5, 11.2],
            "predicted_close": [10.0, 10.0, 10.0],
            "lower_50": 9.5,
            "upper_50": 10.5,
            "lower_80": 9.0,
            "upper_80": 11.0,
        }
    )
    scores = interval_scores(frame, (0.5, 0.8), insample_mse=4.92, insample_mae=2.0)
    assert scores == pytest.approx(
        {
            "coverage_50": 1.0 / 3.0,
            "scaled_pinball_50": 2.45 / 12.0,
            "msis_50": 9.8 / 6.0,
            "coverage_80": 1.0 / 3.0,
            "scaled_pinball_80": 1.3 / 12.0,
            "msis_80": 13.0 / 6.0,
            "mean_scaled_pinball": 0.15625,
            "rmsse": 0.5,
        }
    )


def test_interval_scores_are_nan_without_a_scale_but_coverage_is_not():
    """Coverage needs no scale; the scaled scores do, and are NaN without one."""
    frame = pd.DataFrame({"actual_close": [10.0, 12.0], "lower_90": [9.0, 9.0], "upper_90": [11.0, 11.0]})
    scores = interval_scores(frame, (0.9,), insample_mse=math.nan, insample_mae=0.0)
    assert scores["coverage_90"] == 0.5
    assert math.isnan(scores["scaled_pinball_90"])
    assert math.isnan(scores["msis_90"])
    assert math.isnan(scores["mean_scaled_pinball"])
    assert "rmsse" not in scores
