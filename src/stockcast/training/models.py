"""Candidate forecasters behind one small interface.

Every candidate predicts the log return over the next ``h`` sessions (its horizon) from the
feature row of today, one model per horizon (direct forecasting); the price forecast is
``close * exp(predicted log return)``. Models that learn returns, not price
levels, can be used on any price level, which trees could not extrapolate to.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from stockcast.features.build import DAILY_LAGS, FEATURE_COLUMNS
from stockcast.modeling.specs import ModelSpec


class Forecaster(Protocol):
    kind: str

    def fit(self, features: pd.DataFrame, target: pd.Series) -> Forecaster: ...

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...


class NaiveForecaster:
    """The close h sessions ahead is today's close: the random walk every model must beat."""

    kind = "naive"

    def fit(self, features: pd.DataFrame, target: pd.Series) -> NaiveForecaster:
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(features))


class DriftForecaster:
    """Random walk with drift: the log return over the horizon is the average of the training
    window's returns over as many sessions."""

    kind = "drift"

    def __init__(self) -> None:
        self.mean_log_return = 0.0

    def fit(self, features: pd.DataFrame, target: pd.Series) -> DriftForecaster:
        self.mean_log_return = float(target.mean())
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), self.mean_log_return)


# The daily returns of t, t-1, ..., t-9 as the feature table carries them.
RETURN_HISTORY_COLUMNS = ["log_ret_1", *(f"ret_lag_{lag}" for lag in range(1, DAILY_LAGS))]


class ArimaForecaster:
    """ARIMA(p, 1, q) on log prices, i.e. ARMA(p, q) with a mean on daily log returns, fitted by
    conditional least squares (``arma.py``) on the training window's consecutive returns.

    Forecasts use the model's autoregressive form truncated at ten lags, read from the feature
    row's own return history, so the packaged model needs no state beyond its coefficients
    and the backtest scores exactly what is served. For an invertible ARMA the weights decay
    geometrically; the truncation error is far below the noise. At horizon h the model is still
    fitted on daily returns (the h-session labels overlap and are no ARMA series): the forecast
    is the sum of the next h daily forecasts, each feeding the ones after it (iterated, the
    textbook multi-step ARIMA forecast).
    """

    kind = "arima"

    def __init__(self, p: int = 1, q: int = 1, horizon: int = 1):
        self.order = (p, 0, q)
        self.horizon = horizon
        self.mean = 0.0
        self.weights = np.zeros(DAILY_LAGS)

    def fit(self, features: pd.DataFrame, target: pd.Series) -> ArimaForecaster:
        from statsmodels.tsa.arima_process import arma2ar

        from stockcast.training.arma import fit_arma

        p, _, q = self.order
        # At one session the labels are the daily returns themselves; at more, each training
        # row's own return of the day (``log_ret_1``) is the series, its labels overlapping.
        series = target if getattr(self, "horizon", 1) == 1 else features["log_ret_1"]
        fitted = fit_arma(series.to_numpy(float), p, q)
        self.mean = fitted.mean
        ar_polynomial = np.r_[1.0, -fitted.ar]
        ma_polynomial = np.r_[1.0, fitted.ma]
        if len(ma_polynomial) > 1 and np.any(np.abs(np.roots(ma_polynomial[::-1])) <= 1.0):
            # Not invertible: no finite autoregressive form; fall back to the AR part alone.
            ma_polynomial = np.array([1.0])
        self.weights = -arma2ar(ar_polynomial, ma_polynomial, lags=DAILY_LAGS + 1)[1:]
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        history = features[RETURN_HISTORY_COLUMNS].to_numpy(float) - self.mean
        total = np.zeros(len(history))
        for _ in range(getattr(self, "horizon", 1)):  # models pickled before horizons: one step
            step = history @ self.weights
            total += self.mean + step
            history = np.column_stack([step, history[:, :-1]])
        return total


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
    "drift": {},
    "ridge": {"alpha": 10.0},
    "random_forest": {"n_estimators": 100, "max_depth": 5, "min_samples_leaf": 20, "max_features": 0.5},
    # LightGBM in the default set: a small CPU-only wheel, histogram trees that fit these few
    # thousand rows in milliseconds, and no CUDA libraries pulled in.
    "lightgbm": {
        "n_estimators": 150,
        "learning_rate": 0.02,
        "num_leaves": 7,
        "min_child_samples": 80,
        "subsample": 0.7,
        "subsample_freq": 1,
        "colsample_bytree": 0.7,
        "reg_lambda": 5.0,
    },
    "arima": {"p": 1, "q": 1},
    # XGBoost for teams that standardise on it (not in the default set: LightGBM covers the
    # same ground here). Shallow histogram trees, regularised like the LightGBM candidate; the
    # CPU-only wheel (xgboost-cpu), never the CUDA build.
    "xgboost": {
        "n_estimators": 150,
        "learning_rate": 0.02,
        "max_depth": 3,
        "min_child_weight": 20.0,
        "subsample": 0.7,
        "colsample_bytree": 0.7,
        "reg_lambda": 5.0,
    },
}


def default_spec(kind: str) -> ModelSpec:
    if kind not in DEFAULT_PARAMS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(DEFAULT_PARAMS)}")
    return ModelSpec(kind, dict(DEFAULT_PARAMS[kind]))


def make_forecaster(spec: ModelSpec, seed: int = 0, horizon: int = 1) -> Forecaster:
    """A fresh candidate of ``spec`` for labels ``horizon`` sessions ahead (only the ARIMA
    candidate, which iterates daily forecasts, needs to know the horizon)."""
    if spec.kind == "naive":
        return NaiveForecaster()
    if spec.kind == "drift":
        return DriftForecaster()
    if spec.kind == "arima":
        return ArimaForecaster(**spec.params, horizon=horizon)
    if spec.kind == "lightgbm":
        from lightgbm import LGBMRegressor

        booster = LGBMRegressor(**spec.params, random_state=seed, n_jobs=1, verbose=-1)
        return SklearnForecaster("lightgbm", booster)
    if spec.kind == "xgboost":
        from xgboost import XGBRegressor

        trees = XGBRegressor(**spec.params, tree_method="hist", random_state=seed, n_jobs=1, verbosity=0)
        return SklearnForecaster("xgboost", trees)
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
