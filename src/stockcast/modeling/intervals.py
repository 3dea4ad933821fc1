"""Split-conformal prediction intervals, normalised by each day's recent volatility.

The nonconformity score of a forecast is its absolute error in log-return space divided by
the 20-day volatility known at its origin. Scores stay exchangeable when volatility changes
regime, so an interval of ``quantile * volatility`` keeps its coverage in calm and in turbulent
markets alike, where a fixed width would over-cover the first and under-cover the second.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

SCALE_COLUMN = "volatility_20"
# A floor for flat synthetic or illiquid series, whose volatility can be zero.
MIN_SCALE = 1e-4


def interval_scale(rows: pd.DataFrame) -> np.ndarray:
    return np.maximum(rows[SCALE_COLUMN].to_numpy(float), MIN_SCALE)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The finite-sample-corrected quantile of split conformal prediction."""
    count = len(scores)
    if count == 0:
        return math.inf
    rank = math.ceil((count + 1) * level)
    if rank > count:
        return math.inf
    return float(np.sort(scores)[rank - 1])


# Equal-tailed intervals
# ----------------------
# The symmetric score above, |error| / scale, treats an overshoot and an undershoot alike, so on
# skewed errors (returns with fat left tails, say) one tail of the interval misses far more often
# than the other while the total coverage still looks right. The functions below keep the sign:
# the score is (actual - predicted) / scale, and a level-L interval takes one order statistic of
# the earlier scores for each tail, so each tail misses with probability at most (1 - L) / 2.
# Levels computed from the same scores are nested, since a wider level moves both ranks outwards.

DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9)
# Levels are compared after rounding to this many decimals, so 0.9000000001 is 0.9.
_LEVEL_DECIMALS = 6
# A rank (n + 1) * (1 ± L) / 2 that is a whole number in exact arithmetic (19 for n = 19 and
# L = 0.9) can come out a hair above or below it in binary floats, and ceil or floor would then
# move the rank by one. The slack absorbs that rounding error and nothing more.
_RANK_SLACK = 1e-9


def level_key(level: float) -> str:
    """The name of a level in column and metric names: ``"90"`` for 0.9, ``"50"`` for 0.5.

    Every ``lower_{key}``, ``upper_{key}``, ``coverage_{key}`` ... name is built with this one
    function, so writers and readers of those columns cannot disagree on the spelling.
    """
    return str(round(float(level) * 100))  # float(): numpy's round would give "90.0"


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"an interval level must be strictly between 0 and 1, got {level!r}")


def interval_levels(configured: float) -> tuple[float, ...]:
    """The levels to compute: ``DEFAULT_LEVELS`` plus the configured one, ascending, no duplicates.

    Rounding before the union keeps a configured 0.9000000001 from adding a second 90% level.
    """
    _check_level(configured)
    return tuple(sorted({round(level, _LEVEL_DECIMALS) for level in (*DEFAULT_LEVELS, configured)}))


def _tail_ranks(count: int, level: float) -> tuple[int, int]:
    """1-based ranks (k_lo, k_hi) of the lower and upper bounds among ``count`` sorted scores.

    k_lo < 1 stands for an unbounded lower end and k_hi > count for an unbounded upper end.
    """
    k_lo = math.floor((count + 1) * (1.0 - level) / 2.0 + _RANK_SLACK)
    k_hi = math.ceil((count + 1) * (1.0 + level) / 2.0 - _RANK_SLACK)
    return k_lo, k_hi


def _bounds_from_sorted(ordered: np.ndarray | list[float], count: int, level: float) -> tuple[float, float]:
    k_lo, k_hi = _tail_ranks(count, level)
    lower = float(ordered[k_lo - 1]) if k_lo >= 1 else -math.inf
    upper = float(ordered[k_hi - 1]) if k_hi <= count else math.inf
    return lower, upper


def _signed_scores(scores: np.ndarray) -> np.ndarray:
    values = np.asarray(scores, dtype=float).ravel()
    if np.isnan(values).any():
        raise ValueError("nonconformity scores must not contain NaN")
    return values


def equal_tailed_quantiles(scores: np.ndarray, level: float) -> tuple[float, float]:
    """(q_lo, q_hi): the finite-sample-corrected tail quantiles of signed scores at ``level``.

    With n scores sorted ascending, q_hi is the ceil((n + 1)(1 + L) / 2)-th smallest and q_lo the
    floor((n + 1)(1 - L) / 2)-th smallest; a rank past either end gives an infinite bound. For
    exchangeable scores a new score falls above q_hi, or below q_lo, with probability at most
    (1 - L) / 2 each, so ``[pred + q_lo * scale, pred + q_hi * scale]`` covers with probability
    at least L. No scores at all give (-inf, inf).
    """
    _check_level(level)
    values = _signed_scores(scores)
    return _bounds_from_sorted(np.sort(values), len(values), level)


def online_equal_tailed(
    scores: np.ndarray, levels: Sequence[float], delay: int = 1
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Per level, arrays (q_lo, q_hi) whose i-th entries use only ``scores[: i - delay + 1]``.

    Origin i is calibrated on the origins whose outcome is known at it, as in a walk-forward
    backtest: at horizon h (``delay``) the outcome of origin k arrives h sessions later, so origin
    i sees the scores of origins up to i - h; at h = 1 those strictly before it, and the first
    origin gets (-inf, inf). Entry i equals ``equal_tailed_quantiles(scores[: i - delay + 1], L)``;
    the scores are inserted one at a time into a sorted list (bisect), so the whole pass costs
    O(n^2) element moves in the worst case, done by memmove, rather than a sort per origin.
    """
    for level in levels:
        _check_level(level)
    if delay < 1:
        raise ValueError(f"an outcome arrives at least one session after its origin, got delay {delay}")
    values = _signed_scores(scores)
    count = len(values)
    bounds = {level: (np.empty(count), np.empty(count)) for level in levels}
    ordered: list[float] = []
    listed = values.tolist()
    for i in range(count):
        if i >= delay:
            bisect.insort(ordered, listed[i - delay])
        for level, (lower, upper) in bounds.items():
            lower[i], upper[i] = _bounds_from_sorted(ordered, len(ordered), level)
    return bounds
