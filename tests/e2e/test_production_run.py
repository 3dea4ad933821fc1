"""`stockcast run` on the production services, chosen by a `.env` file alone: prices and
forecasts in PostgreSQL, MLflow's backend in PostgreSQL with artifacts on S3, every artifact
(raw batches, feature table, reports, models) on S3, Feast's online store in Redis."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.e2e.test_daily_cycle import run_cli
from tests.integration.test_production_services import _s3_keys

from stockcast.store.database import Store

TICKERS = "AAPL,MSFT"


ROOT = Path(__file__).resolve().parents[2]


def production_block() -> set[str]:
    """The variables `.env.example` offers for pointing stockcast at real services."""
    text = (ROOT / ".env.example").read_text()
    block = text.split("# ---- Production services", 1)[1].split("\n", 1)[1].split("\n# ----", 1)[0]
    return set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", block, re.MULTILINE))


@pytest.fixture(scope="module")
def production_env(postgres_server, s3_server, redis_server, tmp_path_factory):
    """`.env.example`'s production block filled in with the local servers, written to a `.env`
    file in the folder the commands run in (nothing of it in the environment)."""
    bucket = s3_server.create_bucket()
    names = [postgres_server.create_database() for _ in range(2)]
    folder: Path = tmp_path_factory.mktemp("production")
    services = {
        "STOCKCAST_DATABASE_URL": postgres_server.url(names[0]),
        "MLFLOW_TRACKING_URI": postgres_server.url(names[1]),
        "STOCKCAST_ARTIFACT_ROOT": f"s3://{bucket}/stockcast",
        "STOCKCAST_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": s3_server.environment()["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3_server.environment()["AWS_SECRET_ACCESS_KEY"],
        "STOCKCAST_FEAST_ONLINE_STORE": redis_server,
    }
    assert set(services) <= production_block(), "documented in .env.example's production block"
    quick = {
        "STOCKCAST_DATA_DIR": str(folder / "data"),
        "STOCKCAST_TICKERS": TICKERS,
        "STOCKCAST_SOURCE": "sample",
        "STOCKCAST_MODELS": "naive,ridge",
        "STOCKCAST_BACKTEST_DAYS": "100",
    }
    lines = [f"{key}={value}" for key, value in {**quick, **services}.items()]
    (folder / ".env").write_text("\n".join(lines) + "\n")
    yield {**quick, **services}, bucket, folder
    for name in names:
        postgres_server.drop_database(name)


def test_a_run_on_postgresql_s3_and_redis_stores_everything_there_and_reruns_cleanly(
    production_env, s3_server
):
    env, bucket, folder = production_env
    first = run_cli("run", cwd=folder)
    assert first.returncode == 0, first.stderr
    assert "Close forecasts, by sessions ahead" in first.stdout
    for ticker in TICKERS.split(","):
        assert ticker in first.stdout

    store = Store(env["STOCKCAST_DATABASE_URL"])
    assert store.engine.dialect.name == "postgresql"
    prices, forecasts = store.count_prices(), store.count_forecasts()
    # Two tickers at the default horizons, 1, 5 and 20 sessions ahead: six forecasts.
    assert prices > 1000 and forecasts == 6
    assert sorted(store.load_forecasts()["horizon"]) == [1, 1, 5, 5, 20, 20]

    keys = _s3_keys(s3_server, bucket)
    assert any(key.startswith("stockcast/raw/") for key in keys), keys[:10]
    assert "stockcast/features/daily_features.parquet" in keys
    assert any(key.startswith("stockcast/reports/AAPL/") and key.endswith("data_drift.json") for key in keys)
    assert any(key.startswith("stockcast/mlflow/") and key.endswith("/MLmodel") for key in keys)
    # Nothing fell back to the embedded defaults on this machine.
    data = folder / "data"
    assert not (data / "stockcast.db").exists() and not (data / "mlflow.db").exists()
    assert not (data / "artifacts").exists()

    again = run_cli("run", cwd=folder)
    assert again.returncode == 0, again.stderr
    assert "0 new forecast(s) logged" in again.stdout
    assert (store.count_prices(), store.count_forecasts()) == (prices, forecasts)
    store.dispose()
