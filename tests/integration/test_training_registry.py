"""Training against a real MLflow store: runs logged, champion moved only by the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockcast.context import Context
from stockcast.features.build import build_features
from stockcast.features.offline import latest_row, training_rows
from stockcast.forecasting.predict import make_forecast
from stockcast.settings import load_settings
from stockcast.training.train import train_ticker

FAST = {
    "backtest_days": 100,
    "min_train_days": 150,
    "refit_every_days": 50,
    "models": "naive,ridge",
}


def autocorrelated_bars(make_bars, days: int, phi: float, seed: int = 5) -> pd.DataFrame:
    bars = make_bars(("AAA",), days=days, seed=seed)
    rng = np.random.default_rng(seed)
    log_returns = np.zeros(days)
    for day in range(1, days):
        log_returns[day] = phi * log_returns[day - 1] + rng.normal(0, 0.01)
    close = 40 * np.exp(np.cumsum(log_returns))
    bars["open"] = close
    bars["close"] = close
    bars["high"] = close * 1.004
    bars["low"] = close * 0.996
    return bars


@pytest.fixture
def context():
    return Context(load_settings(tickers="AAA", **FAST))


def test_signal_model_becomes_champion_and_is_logged_with_lineage(context, make_bars):
    features = build_features(autocorrelated_bars(make_bars, 600, phi=0.5))
    report = train_ticker(context, "AAA", training_rows(features, "AAA"), force=True)
    assert report.decision.promote and report.spec_key.startswith("ridge")
    champion = context.registry.champion("AAA")
    assert champion.version == report.version and champion.kind == "ridge"
    assert float(champion.tags["skill_vs_naive"]) > 0
    for key in (
        "data_start",
        "data_end",
        "feature_hash",
        "window_start",
        "window_end",
        "residual_quantile",
    ):
        assert champion.tags[key]
    import mlflow

    runs = mlflow.search_runs(experiment_names=["stockcast"], filter_string="tags.ticker = 'AAA'")
    assert len(runs) == 3  # the parent and one child per candidate

    model = context.registry.load("AAA", champion.version)
    forecast = make_forecast("AAA", latest_row(features, "AAA"), model, champion.name, champion.version)
    assert forecast.lower < forecast.predicted_close < forecast.upper
    assert forecast.model_kind == "ridge"


def regime_flip_bars(make_bars) -> pd.DataFrame:
    """Momentum for 440 days, then reversal: a model that learned momentum loses to naive."""
    bars = autocorrelated_bars(make_bars, 600, phi=0.0, seed=9)
    rng = np.random.default_rng(9)
    log_returns = np.zeros(600)
    for day in range(1, 600):
        phi = 0.7 if day < 440 else -0.7
        log_returns[day] = phi * log_returns[day - 1] + rng.normal(0, 0.01)
    close = 40 * np.exp(np.cumsum(log_returns))
    bars["open"], bars["close"], bars["high"], bars["low"] = (
        close,
        close,
        close * 1.004,
        close * 0.996,
    )
    return bars


def test_a_model_that_loses_to_naive_is_never_promoted(context, make_bars):
    context.settings.train_window_days = None
    features = build_features(regime_flip_bars(make_bars))
    report = train_ticker(context, "AAA", training_rows(features, "AAA"), force=True)
    scores = report.candidates
    ridge = next(key for key in scores if key.startswith("ridge"))
    assert scores[ridge]["rmse"] > scores["naive()"]["rmse"]
    assert report.spec_key == "naive()"
    assert context.registry.champion("AAA").kind == "naive"


def test_champion_is_replaced_only_by_a_model_better_by_the_margin(context, make_bars):
    momentum = build_features(autocorrelated_bars(make_bars, 600, phi=0.6))
    first = train_ticker(context, "AAA", training_rows(momentum, "AAA"), force=True)
    assert context.registry.champion("AAA").kind == "ridge"
    flipped = build_features(regime_flip_bars(make_bars))

    context.settings.promotion_margin = 0.9  # nothing realistic clears a 90% improvement
    kept = train_ticker(context, "AAA", training_rows(flipped, "AAA"), force=True)
    assert not kept.decision.promote and "margin" in kept.decision.reason
    assert context.registry.champion("AAA").version == first.version
    assert context.registry.by_alias("AAA", "challenger").version == kept.version

    context.settings.promotion_margin = 0.0
    replaced = train_ticker(context, "AAA", training_rows(flipped, "AAA"), force=True)
    assert replaced.decision.promote and replaced.spec_key == "naive()"
    assert context.registry.champion("AAA").version == replaced.version


def test_current_champion_is_not_retrained_without_new_data(context, make_bars):
    features = build_features(make_bars(("AAA",), days=600))
    rows = training_rows(features, "AAA")
    assert train_ticker(context, "AAA", rows) is not None
    assert train_ticker(context, "AAA", rows) is None
