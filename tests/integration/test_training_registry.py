"""Training against a real MLflow store: runs logged, champion moved only by the gate."""

from __future__ import annotations

import pytest
from tests.series import autocorrelated_bars, regime_flip_bars

from stockcast.context import Context
from stockcast.features.build import build_features
from stockcast.features.offline import latest_row, training_rows
from stockcast.forecasting.predict import make_forecast
from stockcast.lifecycle.train import train_ticker
from stockcast.settings import load_settings

FAST = {
    "backtest_days": 100,
    "min_train_days": 150,
    "refit_every_days": 50,
    "models": "naive,ridge",
}


@pytest.fixture
def context(backend):
    settings = load_settings(tickers="AAA", **FAST)
    assert settings.resolved_tracking_uri.startswith(backend) and settings.resolved_database_url.startswith(
        backend
    )
    return Context(settings)


def test_signal_model_becomes_champion_and_is_logged_with_lineage(context, make_bars):
    features = build_features(autocorrelated_bars(600, phi=0.5))
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
        "interval_bounds",
    ):
        assert champion.tags[key]
    # The gate's evidence travels with the version and into the decision table.
    assert champion.tags["test_vs_naive"] == "DM-HLN"
    assert float(champion.tags["p_value_vs_naive"]) < 0.05
    assert float(champion.tags["alpha"]) == 0.05
    decision = context.store.load_decisions("AAA").iloc[-1]
    assert decision["test_vs_naive"] == "DM-HLN"
    assert decision["p_value_vs_naive"] == pytest.approx(float(champion.tags["p_value_vs_naive"]))
    assert decision["window_sessions"] == 100 and '"against": "naive"' in decision["tests"]
    import mlflow

    runs = mlflow.search_runs(experiment_names=["stockcast"], filter_string="tags.ticker = 'AAA'")
    assert len(runs) == 3  # the parent and one child per candidate
    client = mlflow.MlflowClient()
    parent = runs.loc[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    children = runs.loc[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert sorted(children["tags.candidate"]) == ["naive", "ridge"]
    assert set(children["status"]) == {"FINISHED"}
    assert children["metrics.rmse"].notna().all() and children["params.kind"].notna().all()
    for run_id in [parent["run_id"], *children["run_id"]]:
        chart = client.download_artifacts(run_id, "backtest.png")
        with open(chart, "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"  # rendered by the worker, stored as is

    model = context.registry.load("AAA", champion.version)
    forecast = make_forecast("AAA", latest_row(features, "AAA"), model, champion.name, champion.version)
    assert forecast.lower < forecast.predicted_close < forecast.upper
    assert forecast.model_kind == "ridge"
    levels = [level for level, _, _ in forecast.intervals]
    assert levels == [0.5, 0.8, 0.9]
    for (_, inner_low, inner_high), (_, outer_low, outer_high) in zip(
        forecast.intervals, forecast.intervals[1:], strict=False
    ):
        assert outer_low <= inner_low < inner_high <= outer_high
    assert forecast.intervals[-1][1:] == (forecast.lower, forecast.upper)


def test_a_model_that_loses_to_naive_is_never_promoted(context, make_bars):
    context.settings.train_window_days = None
    features = build_features(regime_flip_bars())
    report = train_ticker(context, "AAA", training_rows(features, "AAA"), force=True)
    scores = report.candidates
    ridge = next(key for key in scores if key.startswith("ridge"))
    assert scores[ridge]["rmse"] > scores["naive()"]["rmse"]
    assert report.spec_key == "naive()"
    assert context.registry.champion("AAA").kind == "naive"


def test_champion_is_replaced_only_by_a_model_better_by_the_margin(context, make_bars):
    """A significant edge that does not clear the margin leaves naive serving."""
    first = train_ticker(context, "AAA", training_rows(build_features(make_bars(("AAA",), days=600)), "AAA"))
    assert context.registry.champion("AAA").kind == "naive"
    momentum = training_rows(build_features(autocorrelated_bars(600, phi=0.6)), "AAA")

    context.settings.promotion_margin = 0.9  # nothing realistic clears a 90% improvement
    held = train_ticker(context, "AAA", momentum, force=True)
    assert held.spec_key == "naive()" and "margin" in held.decision.reason
    assert context.registry.champion("AAA").kind == "naive"
    assert first.version != held.version  # naive refitted: the same model on newer data

    context.settings.promotion_margin = 0.0
    replaced = train_ticker(context, "AAA", momentum, force=True)
    assert replaced.decision.promote and replaced.spec_key.startswith("ridge")
    assert context.registry.champion("AAA").version == replaced.version


def test_a_challenger_with_noise_level_skill_is_not_promoted_though_its_rmse_is_lower(context, make_bars):
    """A driftless random walk on which ridge scores 1% under naive by chance (Clark-West
    p = 0.05, DM-HLN higher): naive serves, and the decision records the test that said no."""
    rows = training_rows(build_features(make_bars(("AAA",), days=400, seed=31, drift=0.0)), "AAA")
    report = train_ticker(context, "AAA", rows, force=True)
    ridge = next(key for key in report.candidates if key.startswith("ridge"))
    assert report.candidates[ridge]["rmse"] < report.candidates["naive()"]["rmse"]  # the old rule's pick
    assert report.spec_key == "naive()"
    assert report.decision.reason.startswith("no candidate beat naive significantly")
    decision = context.store.load_decisions("AAA").iloc[-1]
    assert decision["challenger_spec"] == "naive()" and decision["p_value_vs_naive"] is None
    assert '"test": "DM-HLN"' in decision["tests"]


def test_current_champion_is_not_retrained_without_new_data(context, make_bars):
    features = build_features(make_bars(("AAA",), days=600))
    rows = training_rows(features, "AAA")
    assert train_ticker(context, "AAA", rows) is not None
    assert train_ticker(context, "AAA", rows) is None


def test_a_window_too_short_for_a_test_decides_nothing_and_crashes_nothing(context, make_bars):
    """20 scored sessions: the first champion is naive (no test needed); a later training keeps
    the champion, says why, and leaves its candidate as the challenger."""
    context.settings.backtest_days = 20
    rows = training_rows(build_features(autocorrelated_bars(600, phi=0.6)), "AAA")
    first = train_ticker(context, "AAA", rows, force=True)
    assert first.decision.promote and first.spec_key == "naive()"
    assert "window too short for a test (n = 20 < 30)" in first.decision.reason
    kept = train_ticker(context, "AAA", rows, force=True)
    assert not kept.decision.promote
    assert kept.decision.reason == "kept: window too short for a test (n = 20 < 30)"
    assert context.registry.champion("AAA").version == first.version
    assert context.registry.by_alias("AAA", "challenger").version == kept.version
    assert context.store.load_decisions("AAA").iloc[-1]["window_sessions"] == 20
