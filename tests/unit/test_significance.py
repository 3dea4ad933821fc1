"""The tests the promotion gate relies on, against hand-computed values and a second
implementation whose figures are recorded here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from stockcast.modeling.significance import (
    clark_west,
    diebold_mariano,
    holm,
    long_run_variance,
    pesaran_timmermann,
)

# Forecast errors from numpy's default_rng(20261130), rounded to 4 decimals, and what R 4.2.2's
# forecast 8.20 (Debian r-cran-forecast 8.20-1) printed for
# dm.test(e1, e2, alternative, h, power = 2) with sprintf("%.15g").
E1 = [-0.3332, -1.0526, -1.7963, 0.0656, -0.5864, -0.2328, 0.0456, 0.6739, -0.5835, 0.5309, -0.4234, -0.8329, 2.0620, -0.0876, -0.7877, 0.9928, -1.5416, -0.9104, 0.4882, -0.3218, 0.1815, 2.3561, 1.2471, -2.0219, -0.6622, -0.6658, -0.1486, -0.7372, -1.6480, 0.7685, 0.4648, 1.1633, -2.8836, 0.2015, -0.5509, 0.2459, -0.4421, -1.8545, 1.4010, 0.6590]  # fmt: skip
E2 = [-0.0364, 0.2634, -0.8472, -0.8485, -0.8894, 0.2278, 1.2890, 0.2222, -0.5773, 0.1542, 0.4220, 0.5621, -0.4641, -0.3297, 0.0686, 0.2396, 0.4319, -0.1270, -0.4972, -0.5309, -0.5994, 1.2346, 0.4330, -1.6348, 0.5073, -1.7087, -1.6918, 0.0288, -0.2270, 1.3022, -0.3749, 0.5896, 1.2669, 0.2160, 0.0899, -0.2876, 0.4171, -0.2018, 0.6565, -0.6738]  # fmt: skip
E3 = [-0.5281, 0.7191, 1.6661, -0.1499, 1.4704, -1.2816, -0.1089, 0.7718, 0.4293, 2.6868, -0.1227, -0.0910, -2.7945, -0.3310, -0.4203, 1.1497, -0.1733, 0.2059, 2.4436, 0.1610, -1.4710, 0.3230, -0.7773, -0.1732, -1.0130, 0.0601, -1.1256, 0.8930, 0.8018, -0.4769, -1.0463, 0.8593, -0.4977, 2.0528, 0.6869, 2.2619, 1.0969, 0.5603, 0.7499, 0.2301]  # fmt: skip
R_DM_GREATER = [
    # (first, second, h, statistic, one-sided p for "second is more accurate")
    ("E1", "E2", 1, 2.40359600543871, 0.0105434403492156),
    ("E1", "E2", 5, 3.17731494226196, 0.00145286181539593),
    ("E1", "E3", 1, -0.191586363588357, 0.575469882877959),
    ("E1", "E3", 5, -0.327195172926363, 0.627364965110828),
]


@pytest.mark.parametrize(("first", "second", "horizon", "statistic", "p_value"), R_DM_GREATER)
def test_diebold_mariano_matches_r_forecast_dm_test(first, second, horizon, statistic, p_value):
    """DM-HLN with h-1 autocovariances gives R's statistic and p-value to 1e-10."""
    series = {"E1": np.array(E1), "E2": np.array(E2), "E3": np.array(E3)}
    result = diebold_mariano(series[first] ** 2, series[second] ** 2, horizon)
    assert result.statistic == pytest.approx(statistic, abs=1e-10)
    assert result.p_value == pytest.approx(p_value, abs=1e-10)
    assert (result.sessions, result.horizon) == (40, horizon)


def test_diebold_mariano_by_hand():
    """d = [1, 0, 2, 1]: mean 1, gamma0 = 2/4, var of the mean 0.5/4, t = 1/sqrt(0.125);
    HLN factor sqrt((4 + 1 - 2)/4), so the statistic is sqrt(8) * sqrt(0.75) = sqrt(6)."""
    result = diebold_mariano(np.array([1.0, 0.0, 2.0, 1.0]), np.zeros(4))
    assert result.statistic == pytest.approx(math.sqrt(6))
    assert result.p_value == pytest.approx(stats.t.sf(math.sqrt(6), df=3))


def test_long_run_variance_falls_back_to_bartlett_weights_when_not_positive():
    """d = [1, 0, 2, 1], one lag: gamma1 = -1/4 makes the rectangular sum 0.5 - 0.5 = 0;
    Bartlett's weight 1/2 gives 0.5 - 0.25 = 0.25, over n = 4."""
    values = np.array([1.0, 0.0, 2.0, 1.0])
    assert long_run_variance(values, 0) == pytest.approx(0.125)
    assert long_run_variance(values, 1) == pytest.approx(0.0625)
    # At h = 2 the HLN factor is sqrt((4 + 1 - 4 + 2/4)/4): 4 * sqrt(0.375) = sqrt(6) again.
    assert diebold_mariano(values, np.zeros(4), horizon=2).statistic == pytest.approx(math.sqrt(6))


def test_diebold_mariano_of_identical_forecasts_finds_nothing():
    losses = np.array([0.5, 1.0, 2.0])
    result = diebold_mariano(losses, losses)
    assert result.p_value == 1.0
    assert math.isnan(result.statistic)


def test_tests_refuse_non_finite_or_mismatched_input():
    with pytest.raises(ValueError, match="non-finite"):
        diebold_mariano(np.array([1.0, np.inf]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="different lengths"):
        clark_west(np.ones(3), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="at least 2"):
        diebold_mariano(np.ones(1), np.ones(1))


def test_clark_west_by_hand():
    """actual [1, 2, 3], restricted 0, candidate 1: adjusted = [1 - (0 - 1), 4 - (1 - 1),
    9 - (4 - 1)] = [2, 4, 6]; mean 4, variance of the mean (8/3)/3, statistic 3 * sqrt(2)."""
    result = clark_west(np.array([1.0, 2.0, 3.0]), np.zeros(3), np.ones(3))
    assert result.statistic == pytest.approx(3 * math.sqrt(2))
    assert result.p_value == pytest.approx(stats.norm.sf(3 * math.sqrt(2)))


@pytest.mark.parametrize("horizon", [1, 5])
def test_clark_west_equals_a_hac_regression_on_a_constant(horizon):
    """Second implementation: statsmodels' OLS of the adjusted differential on a constant with
    a HAC covariance (uniform kernel, h-1 lags) gives the same t statistic."""
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    actual = rng.normal(size=300)
    restricted = np.zeros(300)
    candidate = 0.2 * actual + rng.normal(scale=0.5, size=300)
    adjusted = (actual - restricted) ** 2 - ((actual - candidate) ** 2 - (restricted - candidate) ** 2)
    fit = sm.OLS(adjusted, np.ones(300)).fit(
        cov_type="HAC", cov_kwds={"maxlags": horizon - 1, "kernel": "uniform", "use_correction": False}
    )
    assert clark_west(actual, restricted, candidate, horizon).statistic == pytest.approx(fit.tvalues[0])


def test_clark_west_finds_a_real_edge_that_dm_misses_less_often():
    """On a nested model with a small real edge, Clark-West rejects at least as often as DM."""
    rng = np.random.default_rng(11)
    cw_rejections = dm_rejections = 0
    for _ in range(200):
        signal = rng.normal(size=250)
        actual = 0.15 * signal + rng.normal(size=250)
        candidate = 0.15 * signal + rng.normal(scale=0.1, size=250)  # estimation noise
        restricted = np.zeros(250)
        cw_rejections += clark_west(actual, restricted, candidate).p_value < 0.05
        dm_rejections += diebold_mariano(actual**2, (actual - candidate) ** 2).p_value < 0.05
    assert cw_rejections >= dm_rejections
    assert cw_rejections > 20


def test_holm_by_hand_and_against_statsmodels():
    """Sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04, made monotone: 0.03, 0.06, 0.06."""
    from statsmodels.stats.multitest import multipletests

    p_values = {"ridge": 0.01, "forest": 0.04, "arima": 0.03}
    adjusted = holm(p_values)
    assert adjusted == pytest.approx({"ridge": 0.03, "arima": 0.06, "forest": 0.06})
    reference = multipletests(list(p_values.values()), method="holm")[1]
    assert [adjusted[key] for key in p_values] == pytest.approx(list(reference))
    assert holm({"only": 0.02}) == {"only": 0.02}
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}


def test_pesaran_timmermann_by_hand():
    """8 calls, 5 up (Px = 0.625), 4 actual ups (Py = 0.5), 5 hits: P* = 0.5, V(P) = 0.25/8,
    V(P*) = 0.25^2 * 0.25/8 + 4 * 0.5 * 0.625 * 0.5 * 0.375/64, statistic 0.125/sqrt(V(P) - V(P*))."""
    predicted = np.array([1, 1, -1, -1, 1, -1, 1, 1], float)
    actual = np.array([1, -1, -1, -1, 1, 1, 1, -1], float)
    result = pesaran_timmermann(predicted, actual)
    spread = 0.25 / 8 - (0.25**2 * 0.25 / 8 + 4 * 0.5 * 0.625 * 0.5 * 0.375 / 64)
    assert result.hit_rate == 0.625
    assert result.expected_hit_rate == 0.5
    assert result.statistic == pytest.approx(0.125 / math.sqrt(spread))
    assert result.p_value == pytest.approx(stats.norm.sf(0.125 / math.sqrt(spread)))


def test_pesaran_timmermann_gives_no_credit_for_calling_the_base_rate():
    """Always calling 'up' in a market that rose on 60% of days is right 60% of the time and
    has no skill: no test, not a win over 50%."""
    actual = np.array([1.0] * 60 + [-1.0] * 40)
    result = pesaran_timmermann(np.ones(100), actual)
    assert result.hit_rate == 0.6
    assert math.isnan(result.p_value)
    assert pesaran_timmermann(np.zeros(5), np.ones(5)).calls == 0


def test_pesaran_timmermann_detects_informative_calls_against_a_skewed_base_rate():
    rng = np.random.default_rng(5)
    actual = np.where(rng.random(500) < 0.6, 1.0, -1.0)
    informative = np.where(rng.random(500) < 0.7, actual, -actual)
    independent = np.where(rng.random(500) < 0.6, 1.0, -1.0)
    assert pesaran_timmermann(informative, actual).p_value < 0.001
    assert pesaran_timmermann(independent, actual).p_value > 0.01
