"""The promotion gate's input and verdict as data: every contender's forecasts on one common
window, each test made, and the decision with its reason. ``registry.promotion.decide`` makes
the decision; training builds the window; the lifecycle applies the verdict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from stockcast.modeling.specs import NAIVE_KEY, is_naive


@dataclass(frozen=True)
class GateWindow:
    """Every contender's forecasts on one common out-of-sample window (price space)."""

    actual: np.ndarray
    naive: np.ndarray  # the naive forecast of each day: the close at its origin
    forecasts: Mapping[str, np.ndarray]  # spec key -> forecasts, naive included or not
    horizon: int = 1
    start: Any = None  # first and last origin dates, for the record
    end: Any = None

    @property
    def sessions(self) -> int:
        return len(self.actual)

    def predicted(self, key: str) -> np.ndarray:
        return self.naive if is_naive(key) else np.asarray(self.forecasts[key], float)

    def rmse(self, key: str) -> float:
        return float(np.sqrt(np.mean((self.actual - self.predicted(key)) ** 2)))

    def finite(self) -> bool:
        """Whether every squared error on the window is a finite number (1e308 closes are not)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return all(
                np.isfinite((self.actual - self.predicted(key)) ** 2).all()
                for key in [NAIVE_KEY, *self.forecasts]
            )

    @property
    def naive_rmse(self) -> float:
        return float(np.sqrt(np.mean((self.actual - self.naive) ** 2)))


@dataclass(frozen=True)
class Comparison:
    """One test of a candidate against naive or the champion, with Holm's adjustment."""

    candidate: str
    against: str  # "naive" or the champion's spec key
    test: str
    statistic: float | None
    p_value: float
    p_adjusted: float | None = None  # None when the candidate was not chosen among several

    @property
    def p_used(self) -> float:
        """The p-value a decision compares with alpha: Holm's when adjusted."""
        return self.p_adjusted if self.p_adjusted is not None else self.p_value


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    chosen: str | None = None  # the spec key that serves after the decision
    comparisons: tuple[Comparison, ...] = field(default=())
    alpha: float | None = None
    sessions: int | None = None

    def evidence(self, versus_naive: bool, candidate: str | None = None) -> tuple[str | None, float | None]:
        """(test, p-value the decision used) of a candidate (by default the chosen one) against
        naive, or against the champion; (None, None) when no such test was made."""
        wanted = candidate if candidate is not None else self.chosen
        for found in self.comparisons:
            if found.candidate == wanted and (found.against == "naive") == versus_naive:
                return found.test, found.p_used
        return None, None

    def tests_json(self) -> str:
        return json.dumps([asdict(found) for found in self.comparisons], allow_nan=False, default=str)
