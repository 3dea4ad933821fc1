"""Data drift, the daily figures: do the last sessions' features look like the ones the champion
learned from? (pure)

The current window (the last ``drift_window`` sessions) is compared with the reference window
(the ``reference_days`` sessions up to the champion's data end, never overlapping the current
one) feature by feature, with a two-sample Kolmogorov-Smirnov test; a feature has drifted when
its p-value is at most ``KS_THRESHOLD``. That is the test, the threshold and the handling of
values that are not finite of Evidently's data-drift report as `reports.py` configures it
(``DataDriftPreset(num_method="ks", threshold=0.05)``, every feature numerical), so the figures
computed here every day and the report written on its cadence name the same features; the
monitoring tests check it on real windows. Computed directly it takes about 2 ms a ticker, where
the report takes seconds: Evidently builds its charts while it computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy import stats

from stockcast.features.build import FEATURE_COLUMNS

# Below this many rows on either side a drift test says more about sample size than drift.
MIN_ROWS = 10
# The per-feature test level, Evidently's default for its Kolmogorov-Smirnov test.
KS_THRESHOLD = 0.05


@dataclass(frozen=True)
class FeatureDrift:
    share: float  # drifted features over all features
    drifted: list[str]  # in the order of the feature columns
    p_values: dict[str, float]


def drift_windows(
    features: pd.DataFrame, data_end: date | None, drift_window: int, reference_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current) rows of one ticker's complete feature rows (oldest first): the last
    ``drift_window`` sessions against the ``reference_days`` before them, up to ``data_end``
    (the champion's) when there is one."""
    current = features.tail(drift_window)
    if current.empty:
        return features.iloc[0:0], current
    dates = features["date"].to_numpy()
    # Sorted dates: the windows are positions, found by bisection.
    end = int(np.searchsorted(dates, current["date"].to_numpy()[0], side="left"))
    if data_end is not None:
        end = min(end, int(np.searchsorted(dates, np.datetime64(pd.Timestamp(data_end)), side="right")))
    return features.iloc[max(end - reference_days, 0) : end], current


def _p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """One feature's test with its non-finite values left out, as Evidently leaves them out; a
    side with nothing left is not tested."""
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if reference.size == 0 or current.size == 0:
        return float("nan")
    return float(stats.ks_2samp(reference, current).pvalue)


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str] = FEATURE_COLUMNS,
    threshold: float = KS_THRESHOLD,
) -> FeatureDrift | None:
    """Which features drifted between the windows; None when either has fewer than
    ``MIN_ROWS`` rows."""
    if len(reference) < MIN_ROWS or len(current) < MIN_ROWS:
        return None
    before = reference[columns].to_numpy(float)
    after = current[columns].to_numpy(float)
    if np.isfinite(before).all() and np.isfinite(after).all():
        p_values = np.atleast_1d(stats.ks_2samp(before, after, axis=0).pvalue)
    else:
        p_values = np.array([_p_value(before[:, i], after[:, i]) for i in range(len(columns))])
    drifted = [column for column, p_value in zip(columns, p_values, strict=True) if p_value <= threshold]
    return FeatureDrift(
        share=len(drifted) / len(columns),
        drifted=drifted,
        p_values={column: float(p_value) for column, p_value in zip(columns, p_values, strict=True)},
    )
