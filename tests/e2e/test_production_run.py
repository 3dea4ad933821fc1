"""`stockcast run` on the production services, chosen by environment alone: prices and
forecasts in PostgreSQL, MLflow's backend in PostgreSQL with artifacts on S3, every artifact
(raw batches, feature table, reports, models) on S3, Feast's online store in Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.e2e.test_daily_cycle import run_cli
from tests.integration.test_production_services import _s3_keys

from stockcast.store.database import Store

TICKERS = "AAPL,MSFT"


@pytest.fixture(scope="module")
def production_env(postgres_server, s3_server, redis_server, tmp_path_factory):
    bucket = s3_server.create_bucket()
    names = [postgres_server.create_database() for _ in range(2)]
    folder: Path = tmp_path_factory.mktemp("production")
    env = {
        **s3_server.environment(),
        "STOCKCAST_DATA_DIR": str(folder / "data"),
        "STOCKCAST_TICKERS": TICKERS,
        "STOCKCAST_YAHOO_TIMEOUT_SECONDS": "5",
        "STOCKCAST_YAHOO_RETRIES": "0",
        "STOCKCAST_MODELS": "naive,ridge",
        "STOCKCAST_BACKTEST_DAYS": "100",
        "STOCKCAST_DATABASE_URL": postgres_server.url(names[0]),
        "MLFLOW_TRACKING_URI": postgres_server.url(names[1]),
        "STOCKCAST_ARTIFACT_ROOT": f"s3://{bucket}/stockcast",
        "STOCKCAST_FEAST_ONLINE_STORE": redis_server,
    }
    yield env, bucket, folder
    for name in names:
        postgres_server.drop_database(name)


def test_a_run_on_postgresql_s3_and_redis_stores_everything_there_and_reruns_cleanly(
    production_env, s3_server
):
    env, bucket, folder = production_env
    first = run_cli("run", env=env)
    assert first.returncode == 0, first.stderr
    assert "Next-session close forecasts" in first.stdout
    for ticker in TICKERS.split(","):
        assert ticker in first.stdout

    store = Store(env["STOCKCAST_DATABASE_URL"])
    assert store.engine.dialect.name == "postgresql"
    prices, forecasts = store.count_prices(), store.count_forecasts()
    assert prices > 1000 and forecasts == 2

    keys = _s3_keys(s3_server, bucket)
    assert any(key.startswith("stockcast/raw/") for key in keys), keys[:10]
    assert "stockcast/features/daily_features.parquet" in keys
    assert any(key.startswith("stockcast/reports/AAPL/") and key.endswith("data_drift.json") for key in keys)
    assert any(key.startswith("stockcast/mlflow/") and key.endswith("/MLmodel") for key in keys)
    # Nothing fell back to the embedded defaults on this machine.
    data = folder / "data"
    assert not (data / "stockcast.db").exists() and not (data / "mlflow.db").exists()
    assert not (data / "artifacts").exists()

    again = run_cli("run", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 new forecast(s) logged" in again.stdout
    assert (store.count_prices(), store.count_forecasts()) == (prices, forecasts)
    store.dispose()
