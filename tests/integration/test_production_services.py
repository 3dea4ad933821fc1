"""The production services, chosen by settings alone, each against a real server on loopback:
the artifact store on S3 (moto), the schema command on PostgreSQL, MLflow in server mode with
a PostgreSQL backend and S3 artifacts."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.series import autocorrelated_bars
from typer.testing import CliRunner

from stockcast.artifacts import ArtifactStore
from stockcast.cli import app
from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.forecasting.predict import make_forecast, online_rows, row_of
from stockcast.pipeline import train_many
from stockcast.settings import load_settings
from stockcast.store.database import SchemaOutdatedError, Store, head_revision

FAST = {"backtest_days": 100, "min_train_days": 150, "refit_every_days": 50, "models": "naive,ridge"}


def _s3_keys(s3, bucket: str) -> list[str]:
    import boto3
    from tests.services import ACCESS_KEY, SECRET_KEY

    client = boto3.client(
        "s3", endpoint_url=s3.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_the_artifact_store_on_s3_round_trips_and_leaves_no_partial_objects(s3_environment):
    s3, bucket = s3_environment
    store = ArtifactStore(f"s3://{bucket}/artifacts", s3_endpoint=s3.endpoint)
    frame = pd.DataFrame({"ticker": ["AAA", "BBB"], "close": [1.5, 2.5]})
    url = store.write_parquet("features/daily.parquet", frame)
    assert url == f"s3://{bucket}/artifacts/features/daily.parquet"
    pd.testing.assert_frame_equal(store.read_parquet("features/daily.parquet"), frame)
    store.write_bytes("reports/AAA/2024-01-02/drift.json", b"{}")
    store.write_bytes("reports/AAA/2024-01-02/drift.json", b'{"again": true}')  # a rerun replaces
    assert store.read_bytes("reports/AAA/2024-01-02/drift.json") == b'{"again": true}'
    assert store.exists("features/daily.parquet") and not store.exists("features/other.parquet")
    assert store.list("reports/AAA") == ["reports/AAA/2024-01-02/drift.json"]
    # Only finished objects exist: the staging keys were moved into place.
    assert sorted(_s3_keys(s3, bucket)) == [
        "artifacts/features/daily.parquet",
        "artifacts/reports/AAA/2024-01-02/drift.json",
    ]


def test_db_upgrade_migrates_postgresql_once_and_an_outdated_schema_is_a_clear_error(
    postgres_database, monkeypatch
):
    monkeypatch.setenv("STOCKCAST_DATABASE_URL", postgres_database)
    monkeypatch.setenv("STOCKCAST_MIGRATE_ON_START", "false")
    with pytest.raises(SchemaOutdatedError, match="stockcast db upgrade"):
        _ = Context(load_settings()).store  # not migrated: refuses rather than changing it

    runner = CliRunner()
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 1 and "run `stockcast db upgrade`" in current.output
    first = runner.invoke(app, ["db", "upgrade", "--no-mlflow"])
    assert first.exit_code == 0, first.output
    assert f"migrated from an empty database to revision {head_revision()}" in first.output
    assert "postgres@127.0.0.1" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--no-mlflow"])
    assert again.exit_code == 0 and f"already at revision {head_revision()}" in again.output
    assert runner.invoke(app, ["db", "current"]).exit_code == 0
    store = Context(load_settings()).store  # now current: opens
    assert store.schema_revision() == head_revision() and store.engine.dialect.name == "postgresql"


def test_db_upgrade_also_brings_mlflows_database_up(postgres_server, monkeypatch):
    tracking = postgres_server.create_database()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_server.url(tracking))
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "MLflow schema current" in result.output
    store = Store(postgres_server.url(tracking))
    with store.engine.connect() as connection:
        tables = {row[0] for row in connection.exec_driver_sql("SELECT tablename FROM pg_tables")}
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables
    store.dispose()


def test_mlflow_server_mode_trains_registers_and_loads_like_the_local_uri(
    mlflow_server, s3_server, monkeypatch, capsys
):
    """Training, the champion alias and loading the model through `mlflow server` (PostgreSQL
    backend, artifacts proxied to S3); the client holds no S3 credentials."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    context = Context(load_settings(tickers="AAA", **FAST))
    context.store.upsert_prices(autocorrelated_bars(600, phi=0.5))
    refresh_feature_store(context)
    reports, failures = train_many(context, ["AAA"], force=True)
    assert not failures and reports[0].decision.promote
    champion = context.registry.champion("AAA")
    assert champion is not None and champion.version == reports[0].version
    model = context.registry.load("AAA", champion.version)
    row = row_of(online_rows(context.feature_store.online(["AAA"])), "AAA")
    forecast = make_forecast("AAA", row, model, champion.name, champion.version)
    assert forecast.lower < forecast.predicted_close < forecast.upper

    import mlflow

    client = mlflow.MlflowClient(mlflow_server.url)
    version = client.get_model_version(champion.name, champion.version)
    assert version.source  # the model lives behind the server, not on this machine
    experiment = client.get_experiment_by_name("stockcast")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    bucket = mlflow_server.artifact_root.removeprefix("s3://").split("/")[0]
    stored = _s3_keys(s3_server, bucket)
    assert any(key.endswith("/MLmodel") for key in stored)  # the server wrote them to S3
    assert any(key.endswith("/backtest.png") for key in stored)
    assert "View run" not in capsys.readouterr().out  # MLflow's links stay off our stdout


def test_feasts_local_copy_of_a_remote_offline_table_follows_the_table_of_record(s3_environment, tmp_path):
    """Feast reads remote parquet through a local copy; another process that rewrites the
    table on S3 must be seen at the next read, and an unchanged table is not fetched again."""
    from stockcast.features.feature_store import OfflineMirror

    s3, bucket = s3_environment
    store = ArtifactStore(f"s3://{bucket}/artifacts", s3_endpoint=s3.endpoint)
    copy = tmp_path / "feast" / "daily_features.parquet"
    mirror = OfflineMirror(store, "features/daily_features.parquet", copy)
    mirror.sync()
    assert not copy.exists()  # nothing to copy yet

    first = pd.DataFrame({"ticker": ["AAA"], "close": [1.0]})
    store.write_parquet("features/daily_features.parquet", first)
    mirror.sync()
    pd.testing.assert_frame_equal(pd.read_parquet(copy), first)
    stamp = copy.stat().st_mtime_ns
    mirror.sync()
    assert copy.stat().st_mtime_ns == stamp  # unchanged on S3: not downloaded again

    second = pd.DataFrame({"ticker": ["AAA", "BBB"], "close": [1.0, 2.0]})
    store.write_parquet("features/daily_features.parquet", second)
    mirror.sync()
    pd.testing.assert_frame_equal(pd.read_parquet(copy), second)
