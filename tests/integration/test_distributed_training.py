"""Training scaled out: backtests on a real dask.distributed LocalCluster (and a local process
pool), registration and the promotion gate in the driver; one ticker's failure is its own."""

from __future__ import annotations

import pytest
from tests.series import autocorrelated_bars, synthetic_bars

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.pipeline import train_many
from stockcast.settings import load_settings

SETTINGS = {"backtest_days": 100, "min_train_days": 150, "refit_every_days": 50, "models": "naive,ridge"}
TICKERS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def prepared(**overrides) -> Context:
    context = Context(load_settings(tickers=",".join(TICKERS), **SETTINGS, **overrides))
    context.store.upsert_prices(synthetic_bars(tuple(TICKERS[:3]), days=500))
    short = autocorrelated_bars(62, phi=0.3)  # too little history for any backtest
    context.store.upsert_prices(short.assign(ticker="DDD"))
    refresh_feature_store(context)
    return context


def test_training_runs_on_a_dask_cluster_and_one_failure_stays_its_own(cluster):
    context = prepared(dask_address=cluster.scheduler_address)
    reports, failures = train_many(context, TICKERS, force=True)
    assert sorted(report.ticker for report in reports) == ["AAA", "BBB", "CCC"]
    assert set(failures) == {"DDD"} and "cannot train" in failures["DDD"]
    for report in reports:  # registered and gated by the driver
        assert context.registry.champion(report.ticker).version == report.version
    decisions = context.store.load_decisions()
    assert sorted(decisions["ticker"]) == ["AAA", "BBB", "CCC"]


def test_the_cluster_and_a_process_pool_train_the_same_models(cluster, tmp_path, monkeypatch):
    on_dask = prepared(dask_address=cluster.scheduler_address)
    dask_reports, _ = train_many(on_dask, ["AAA", "BBB"], force=True)
    monkeypatch.setenv("STOCKCAST_DATA_DIR", str(tmp_path / "local"))
    local = prepared(training_workers=2)
    local_reports, _ = train_many(local, ["AAA", "BBB"], force=True)
    by_ticker = {report.ticker: report for report in local_reports}
    for report in dask_reports:
        assert report.spec_key == by_ticker[report.ticker].spec_key
        assert report.metrics["rmse"] == pytest.approx(by_ticker[report.ticker].metrics["rmse"])
