"""Candidate forecasters behind one small interface.

Every candidate predicts the next session's log return from the feature row of today; the
price forecast is ``close * exp(predicted log return)``. Models that learn returns, not price
levels, can be used on any price level, which trees could not extrapolate to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from stockcast.features.build import FEATURE_COLUMNS


class Forecaster(Protocol):
    kind: str

    def fit(self, features: pd.DataFrame, target: pd.Series) -> Forecaster: ...

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelSpec:
    """What to build: a kind and its parameters. Two specs are the same model if equal."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        rendered = ",".join(f"{name}={self.params[name]}" for name in sorted(self.params))
        return f"{self.kind}({rendered})"


class NaiveForecaster:
    """Tomorrow's close is today's close: the random walk every model must beat."""

    kind = "naive"

    def fit(self, features: pd.DataFrame, target: pd.Series) -> NaiveForecaster:
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(features))


class SklearnForecaster:
    """A scikit-learn regressor on the feature columns; scaling is fitted on training rows only."""

    def __init__(self, kind: str, estimator: Any):
        self.kind = kind
        self.estimator = estimator

    def fit(self, features: pd.DataFrame, target: pd.Series) -> SklearnForecaster:
        self.estimator.fit(features[FEATURE_COLUMNS].to_numpy(float), target.to_numpy(float))
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict(features[FEATURE_COLUMNS].to_numpy(float)))

    def feature_importances(self) -> dict[str, float] | None:
        final = self.estimator[-1] if hasattr(self.estimator, "steps") else self.estimator
        values = getattr(final, "feature_importances_", None)
        if values is None:
            values = getattr(final, "coef_", None)
        if values is None:
            return None
        return {name: float(value) for name, value in zip(FEATURE_COLUMNS, np.ravel(values), strict=True)}


DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "naive": {},
    "ridge": {"alpha": 10.0},
    "random_forest": {
        "n_estimators": 100,
        "max_depth": 5,
        "min_samples_leaf": 20,
        "max_features": 0.5,
    },
}


def default_spec(kind: str) -> ModelSpec:
    if kind not in DEFAULT_PARAMS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(DEFAULT_PARAMS)}")
    return ModelSpec(kind, dict(DEFAULT_PARAMS[kind]))


def make_forecaster(spec: ModelSpec, seed: int = 0) -> Forecaster:
    if spec.kind == "naive":
        return NaiveForecaster()
    if spec.kind == "ridge":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return SklearnForecaster("ridge", make_pipeline(StandardScaler(), Ridge(**spec.params)))
    if spec.kind == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(**spec.params, random_state=seed, n_jobs=1)
        return SklearnForecaster("random_forest", forest)
    raise ValueError(f"unknown model kind {spec.kind!r}; known: {', '.join(DEFAULT_PARAMS)}")
