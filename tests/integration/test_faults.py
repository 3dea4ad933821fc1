"""Faults injected for real under a running stockcast: PostgreSQL stopped in the middle of a
write and restarted, a SQLite file locked by another process, the S3 endpoint gone during
ingestion, and a champion whose artifact is corrupt or missing. Each test asserts the error a
user sees, the retry where one makes sense, and the store afterwards: unchanged by the failed
attempt, and the same as an uninterrupted run once rerun."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from tests.e2e.test_daily_cycle import run_cli
from tests.faults import HeldProcess, TcpProxy, reference_prices, sample_env, stored_prices
from tests.integration.test_production_services import _s3_keys
from tests.series import synthetic_bars

from stockcast.context import Context
from stockcast.ingest.ingest import ingest
from stockcast.settings import load_settings
from stockcast.store.database import Store, StoreUnavailableError

QUICK_TRAINING = {"backtest_days": 60, "min_train_days": 150, "refit_every_days": 60, "models": "naive,ridge"}


def assert_one_clear_line(stderr: str, *phrases: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    for phrase in phrases:
        assert phrase in stderr, stderr[-3000:]


@pytest.mark.fault(
    "PostgreSQL stopped in the middle of a write (prices upsert held before commit), then restarted",
    "The command exits 1 with `database unreachable ...; nothing of this write was stored`; the "
    "table is as before; the rerun stores exactly what an uninterrupted run stores",
)
def test_postgres_stopped_in_the_middle_of_a_write_loses_nothing(private_postgres, tmp_path):
    url = private_postgres.url(private_postgres.create_database())
    env = sample_env(tmp_path / "run", STOCKCAST_DATABASE_URL=url, STOCKCAST_DATABASE_TIMEOUT_SECONDS="2")
    first = run_cli("ingest", "--tickers", "IBM", env=env, cwd=tmp_path / "run")
    assert first.returncode == 0, first.stderr
    before = stored_prices(url)

    release = tmp_path / "release"
    held = HeldProcess(
        ["ingest", "--tickers", "AAPL,MSFT"],
        {**env, "STOCKCAST_FAILPOINTS": f"store.prices.before_commit=wait:{release}"},
        tmp_path / "run",
    )
    held.wait_for("store.prices.before_commit")  # the rows are sent, the commit is not
    private_postgres.stop()
    release.touch()
    code, _, stderr = held.finish()
    private_postgres.start()
    assert code == 1
    assert_one_clear_line(stderr, "database unreachable", "nothing of this write was stored")
    pd.testing.assert_frame_equal(stored_prices(url), before)

    again = run_cli("ingest", "--tickers", "AAPL,MSFT", env=env, cwd=tmp_path / "run")
    assert again.returncode == 0, again.stderr
    expected = reference_prices(tmp_path / "reference", "IBM", "AAPL,MSFT")
    pd.testing.assert_frame_equal(stored_prices(url), expected)


@pytest.mark.fault(
    "PostgreSQL restarting while a process holds pooled connections",
    "Stale connections are replaced and refused connections retried with backoff for up to "
    "STOCKCAST_DATABASE_TIMEOUT_SECONDS; the operation succeeds. A server still down after "
    "that fails with `database unreachable (tried for N s)`",
)
def test_an_operation_waits_for_a_restarting_postgres(private_postgres, make_bars):
    url = private_postgres.url(private_postgres.create_database())
    store = Store(url, timeout_seconds=60)
    store.upgrade()
    bars = make_bars(("AAA",), days=30)
    store.upsert_prices(bars)
    private_postgres.stop()

    impatient = Store(url, timeout_seconds=1)
    with pytest.raises(StoreUnavailableError, match=r"database unreachable \(tried for 1 s\)"):
        impatient.count_prices()
    impatient.dispose()

    attempts: list[int] = []
    restarting = threading.Thread(target=private_postgres.start)

    @event.listens_for(store.engine, "do_connect")
    def restart_on_first_attempt(*_: object) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            restarting.start()  # the server comes back while the call is already waiting

    assert store.count_prices() == len(bars)
    restarting.join()
    assert len(attempts) >= 2, "the first attempt found the server down and was retried"
    store.dispose()


@pytest.mark.fault(
    "PostgreSQL answers that the database does not exist",
    "Fails at once with the server's reason (no retry: it is an answer, not an outage)",
)
def test_a_database_that_does_not_exist_is_not_waited_for(private_postgres):
    store = Store(private_postgres.url("no_such_database"), timeout_seconds=60)
    attempts: list[int] = []
    event.listen(store.engine, "do_connect", lambda *_: attempts.append(1))
    with pytest.raises(StoreUnavailableError, match='database "no_such_database" does not exist'):
        store.count_prices()
    assert attempts == [1], "a missing database is an answer, not an outage: no retry"
    store.dispose()


@pytest.mark.fault(
    "SQLite file locked by another process (an open exclusive transaction)",
    "The write waits STOCKCAST_DATABASE_TIMEOUT_SECONDS, then fails with `the database file is "
    "locked by another process`; stored bars unchanged; the rerun after the lock is released stores the batch",
)
def test_a_locked_sqlite_file_fails_clearly_and_keeps_what_is_stored():
    context = Context(load_settings(source="sample", start_date="2010-01-01", database_timeout_seconds=1))
    ingest(context, ["IBM"])
    url = context.settings.resolved_database_url
    before = stored_prices(url)

    holder = sqlite3.connect(url.removeprefix("sqlite:///"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked by another process"):
            ingest(context, ["AAPL"])
    finally:
        holder.rollback()
        holder.close()
    pd.testing.assert_frame_equal(stored_prices(url), before)

    report = ingest(context, ["AAPL"])
    assert report.rows_written["AAPL"] > 500
    assert set(stored_prices(url)["ticker"]) == {"AAPL", "IBM"}


@pytest.mark.fault(
    "S3 endpoint down during ingestion (connections refused after the bars were fetched)",
    "The command exits 1 with `artifact store s3://... unavailable`; no price row is written "
    "without its raw batch; once S3 is back the rerun stores the batch and the same rows",
)
def test_s3_down_during_ingestion_writes_nothing_then_recovers(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    proxy = TcpProxy(int(s3_server.endpoint.rsplit(":", 1)[1]))
    folder = tmp_path / "run"
    env = sample_env(
        folder,
        **{
            **s3_server.environment(),
            "AWS_ENDPOINT_URL": proxy.endpoint,
            "STOCKCAST_ARTIFACT_ROOT": f"s3://{bucket}/stockcast",
            "STOCKCAST_S3_ENDPOINT_URL": proxy.endpoint,
        },
    )
    release = tmp_path / "release"
    try:
        held = HeldProcess(
            ["ingest", "--tickers", "IBM"],
            {**env, "STOCKCAST_FAILPOINTS": f"ingest.validated=wait:{release}"},
            folder,
        )
        held.wait_for("ingest.validated")
        proxy.down()
        release.touch()
        code, _, stderr = held.finish()
        assert code == 1
        assert_one_clear_line(stderr, f"artifact store s3://{bucket}/stockcast unavailable")
        url = f"sqlite:///{folder / 'data' / 'stockcast.db'}"
        assert stored_prices(url).empty
        assert not [key for key in _s3_keys(s3_server, bucket) if key.startswith("stockcast/raw/")]

        proxy.up()
        again = run_cli("ingest", "--tickers", "IBM", env=env, cwd=folder)
        assert again.returncode == 0, again.stderr
    finally:
        proxy.close()
    assert [key for key in _s3_keys(s3_server, bucket) if key.startswith("stockcast/raw/prices/")]
    pd.testing.assert_frame_equal(stored_prices(url), reference_prices(tmp_path / "reference", "IBM"))


def _model_file(context: Context, ticker: str) -> Path:
    from mlflow import MlflowClient

    from stockcast.registry.mlflow_registry import model_name_for

    champion = context.registry.champion(ticker)
    assert champion is not None
    location = MlflowClient().get_model_version_download_uri(model_name_for(ticker), champion.version)
    return Path(location.removeprefix("file://")) / "python_model.pkl"


@pytest.mark.fault(
    "A champion's model artifact corrupt (garbage bytes) or missing (file deleted)",
    "The API starts and serves the other tickers; /ready stays 200 and lists each bad ticker "
    "with why; /predict for it answers 503 with the reason, never a 500",
)
def test_a_corrupt_or_missing_champion_artifact_spares_the_other_tickers():
    from stockcast.features.offline import refresh_feature_store
    from stockcast.pipeline import train_many
    from stockcast.serving.app import create_app

    tickers = ("AAA", "BBB", "CCC")
    context = Context(load_settings(tickers=",".join(tickers), **QUICK_TRAINING))
    context.store.upsert_prices(synthetic_bars(tickers, days=400))
    refresh_feature_store(context)
    _, failures = train_many(context, list(tickers), force=True)
    assert not failures
    _model_file(context, "BBB").write_bytes(b"\x80\x04 not a pickle")
    _model_file(context, "CCC").unlink()

    with TestClient(create_app(context.settings)) as client:
        ready = client.get("/ready")
        served = client.get("/predict/AAA")
        corrupt = client.get("/predict/BBB")
        missing = client.post("/predict", json={"ticker": "CCC"})
    assert ready.status_code == 200
    assert ready.json()["champions"] == {"AAA": "1"}
    problems = ready.json()["problems"]
    assert any(problem.startswith("BBB: champion v1 failed to load") for problem in problems), problems
    assert any(problem.startswith("CCC: champion v1 failed to load") for problem in problems), problems
    assert served.status_code == 200 and served.json()["ticker"] == "AAA"
    for answer, ticker in ((corrupt, "BBB"), (missing, "CCC")):
        assert answer.status_code == 503, answer.text
        assert answer.json()["message"].startswith(f"{ticker} cannot be forecast: champion v1 failed to load")
