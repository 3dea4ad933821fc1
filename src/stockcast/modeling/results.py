"""What training computes, as data the registry logs: one candidate's backtest, the computed
training of a ticker, and a tuning study's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stockcast.modeling.gate import Decision
from stockcast.modeling.specs import ModelSpec


@dataclass
class BacktestResult:
    spec: ModelSpec
    forecasts: pd.DataFrame  # the scored window, one row per origin
    metrics: dict[str, float]
    # Per level, the (lower, upper) quantiles of the signed volatility-scaled errors over every
    # out-of-sample origin: what the fitted model's intervals are made of.
    interval_bounds: dict[float, tuple[float, float]]
    feature_importances: dict[str, float] | None = field(default=None)
    horizon: int = 1  # sessions ahead


@dataclass
class Computed:
    """The CPU-heavy part: every candidate's walk-forward backtest, its chart, the gate's
    decision and the chosen model fitted on the latest window. Computed anywhere (a Dask
    worker), needing only the rows."""

    results: dict[str, BacktestResult]
    chosen: BacktestResult
    forecaster: Any
    decision: Decision
    plots: dict[str, bytes] = field(default_factory=dict)


@dataclass
class TuningResult:
    kind: str
    best_spec: ModelSpec
    best_rmse: float
    trials: int
    pruned: int
    study: Any
