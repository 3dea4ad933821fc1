"""Tests of forecast superiority and of directional skill (pure).

Daily closes are close to a random walk, so a lower RMSE on one window is weak evidence: over
250 sessions two forecasts of equal skill differ by a few hundredths of a percent either way.
The promotion gate therefore asks these tests whether a difference in loss is larger than
chance, one-sided, on the loss differential of the same window:

- Diebold-Mariano with the Harvey-Leybourne-Newbold small-sample correction (DM-HLN), for two
  forecasts neither of which nests the other (a challenger against a non-naive champion).
- Clark-West, for a model that nests the random walk (every candidate here can reproduce
  "tomorrow = today" with a parameter at zero). Under the null that the extra parameters are
  zero, the larger model's loss is inflated by estimating them, which makes DM undersized;
  Clark-West adds that noise back before testing.
- Holm's step-down correction, because the challenger is the best of several candidates.
- Pesaran-Timmermann, for directional accuracy against the base rate of up days (a model that
  always calls "up" in a rising market is right more than half the time and has no skill).

At horizon h the forecast errors overlap, so the variance of a mean differential is a HAC
(long-run) variance with h-1 autocovariances, never the i.i.d. one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

DM_HLN = "DM-HLN"
CLARK_WEST = "Clark-West"


@dataclass(frozen=True)
class TestResult:
    """A one-sided test: a small ``p_value`` says the candidate's loss is lower."""

    test: str
    statistic: float
    p_value: float
    sessions: int
    horizon: int = 1


def long_run_variance(values: np.ndarray, lags: int) -> float:
    """Variance of the mean of ``values`` with autocovariances up to ``lags`` (HAC).

    The truncated (rectangular) estimator that Diebold and Mariano proposed, and R's
    ``forecast::dm.test`` uses by default; when it is not positive, which can happen with
    rectangular weights and h > 1, Bartlett (Newey-West) weights, which never are negative.
    """
    count = len(values)
    centred = values - values.mean()
    autocovariances = np.array(
        [np.dot(centred[lag:], centred[: count - lag]) / count for lag in range(min(lags, count - 1) + 1)]
    )
    variance = autocovariances[0] + 2.0 * autocovariances[1:].sum()
    if variance <= 0.0:
        weights = 1.0 - np.arange(1, len(autocovariances)) / (lags + 1)
        variance = autocovariances[0] + 2.0 * float(np.dot(weights, autocovariances[1:]))
    return float(variance) / count


def _checked(*series: np.ndarray) -> int:
    lengths = {len(values) for values in series}
    if len(lengths) != 1:
        raise ValueError(f"series of different lengths: {sorted(lengths)}")
    count = lengths.pop()
    if count < 2:
        raise ValueError(f"a test needs at least 2 sessions, got {count}")
    if not all(np.isfinite(values).all() for values in series):
        raise ValueError("a test cannot use non-finite forecasts or losses")
    return count


def diebold_mariano(reference_loss: np.ndarray, candidate_loss: np.ndarray, horizon: int = 1) -> TestResult:
    """DM-HLN: is the candidate's expected loss lower than the reference's?

    ``p_value`` is one-sided, from Student's t with n-1 degrees of freedom after the HLN
    scaling sqrt((n + 1 - 2h + h(h-1)/n) / n). Identical forecasts (no variance) give p = 1.
    Equals R's ``forecast::dm.test(e_reference, e_candidate, "greater", h, power=2)`` given
    squared errors.
    """
    reference_loss = np.asarray(reference_loss, float)
    candidate_loss = np.asarray(candidate_loss, float)
    count = _checked(reference_loss, candidate_loss)
    differential = reference_loss - candidate_loss
    variance = long_run_variance(differential, horizon - 1)
    if not variance > 0.0:
        return TestResult(DM_HLN, float("nan"), 1.0, count, horizon)
    correction = math.sqrt((count + 1 - 2 * horizon + horizon * (horizon - 1) / count) / count)
    statistic = float(differential.mean() / math.sqrt(variance) * correction)
    return TestResult(DM_HLN, statistic, float(stats.t.sf(statistic, df=count - 1)), count, horizon)


def clark_west(
    actual: np.ndarray, restricted: np.ndarray, candidate: np.ndarray, horizon: int = 1
) -> TestResult:
    """Clark-West (2007): does the candidate, which nests the restricted forecast, beat it?

    The adjusted differential is e_r^2 - (e_c^2 - (f_r - f_c)^2); its mean is tested against
    zero with a HAC variance and the standard normal, as Clark and West recommend.
    """
    actual, restricted, candidate = (np.asarray(values, float) for values in (actual, restricted, candidate))
    count = _checked(actual, restricted, candidate)
    adjusted = (actual - restricted) ** 2 - ((actual - candidate) ** 2 - (restricted - candidate) ** 2)
    variance = long_run_variance(adjusted, horizon - 1)
    if not variance > 0.0:
        return TestResult(CLARK_WEST, float("nan"), 1.0, count, horizon)
    statistic = float(adjusted.mean() / math.sqrt(variance))
    return TestResult(CLARK_WEST, statistic, float(stats.norm.sf(statistic)), count, horizon)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values: rejecting where they are below alpha keeps the
    chance of any false rejection in the family at alpha, whatever the dependence between the
    tests (candidates judged on the same window are strongly dependent)."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    count = len(ordered)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (key, p_value) in enumerate(ordered):
        running = max(running, min(1.0, (count - rank) * p_value))
        adjusted[key] = running
    return adjusted


@dataclass(frozen=True)
class DirectionTest:
    """Pesaran-Timmermann: hit rate against what independent calls would score by chance."""

    hit_rate: float
    expected_hit_rate: float  # from the base rates of predicted and actual up moves
    statistic: float
    p_value: float
    calls: int


def pesaran_timmermann(predicted_move: np.ndarray, actual_move: np.ndarray) -> DirectionTest:
    """One-sided test that predicted directions agree with actual ones more than chance does.

    Only days with a call (a predicted move that is not zero) and a move count. A model that
    calls the same direction every day has no variance to test against: NaN statistic and p.
    For one-step forecasts; overlapping outcomes (h > 1) would need a HAC version.
    """
    predicted_move = np.asarray(predicted_move, float)
    actual_move = np.asarray(actual_move, float)
    called = (
        (predicted_move != 0) & (actual_move != 0) & np.isfinite(predicted_move) & np.isfinite(actual_move)
    )
    calls = int(called.sum())
    if calls == 0:
        return DirectionTest(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    predicted_up = predicted_move[called] > 0
    actual_up = actual_move[called] > 0
    hit_rate = float(np.mean(predicted_up == actual_up))
    share_predicted, share_actual = float(predicted_up.mean()), float(actual_up.mean())
    expected = share_actual * share_predicted + (1 - share_actual) * (1 - share_predicted)
    variance_hits = expected * (1 - expected) / calls
    variance_expected = (
        (2 * share_actual - 1) ** 2 * share_predicted * (1 - share_predicted) / calls
        + (2 * share_predicted - 1) ** 2 * share_actual * (1 - share_actual) / calls
        + 4 * share_actual * share_predicted * (1 - share_actual) * (1 - share_predicted) / calls**2
    )
    spread = variance_hits - variance_expected
    if not spread > 1e-15:
        return DirectionTest(hit_rate, expected, float("nan"), float("nan"), calls)
    statistic = (hit_rate - expected) / math.sqrt(spread)
    return DirectionTest(hit_rate, expected, statistic, float(stats.norm.sf(statistic)), calls)
