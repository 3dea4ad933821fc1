"""Split-conformal prediction intervals, normalised by each day's recent volatility.

The nonconformity score of a forecast is its absolute error in log-return space divided by
the 20-day volatility known at its origin. Scores stay exchangeable when volatility changes
regime, so an interval of ``quantile * volatility`` keeps its coverage in calm and in turbulent
markets alike, where a fixed width would over-cover the first and under-cover the second.
"""

from __future__ import annotations

import math

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
