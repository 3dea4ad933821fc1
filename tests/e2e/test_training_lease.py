"""One trainer per ticker across processes (issue 20), with real processes on real databases:
three `stockcast train` commands and an API job started together train AAPL one after the
other; a holder SIGKILLed mid-training frees the ticker when its lease expires; a holder whose
lease lapsed and was taken over cannot move the champion alias; `stockcast run` passes a ticker
being trained by, while `stockcast train` and `models promote` wait, then exit 1 naming the
holder."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.conftest import clean_environment
from tests.faults import HeldProcess

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.ingest.ingest import ingest
from stockcast.pipeline import train_many
from stockcast.registry.mlflow_registry import model_name_for
from stockcast.settings import load_settings
from stockcast.store.leases import default_activity, owner_of

STOCKCAST = str(Path(sys.executable).parent / "stockcast")
KEY = "lease-test-key-0123456789"
FAST = {
    "STOCKCAST_SOURCE": "sample",
    "STOCKCAST_TICKERS": "AAPL",
    "STOCKCAST_START_DATE": "2010-01-01",
    "STOCKCAST_HORIZONS": "1",
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "150",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_API_KEYS": KEY,
}
HOST = socket.gethostname()


@pytest.fixture
def environment(isolated_environment, monkeypatch):
    """Sets the fast configuration for this process; returns the environment of a command
    sharing its stores (the backend's database URLs included, when a test sets them)."""
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)

    def command_env(**more: str) -> dict[str, str]:
        shared = {
            name: os.environ[name]
            for name in ("STOCKCAST_DATABASE_URL", "MLFLOW_TRACKING_URI")
            if name in os.environ
        }
        settings = {**FAST, "STOCKCAST_DATA_DIR": str(isolated_environment / "data"), **shared, **more}
        return clean_environment(**settings)

    return command_env


def prepared(tickers: list[str], **settings: str) -> Context:
    """Sample bars ingested and the feature store filled, in this process."""
    context = Context(load_settings(tickers=",".join(tickers), **settings))
    report = ingest(context, tickers)
    assert not report.failures, report.failures
    refresh_feature_store(context)
    return context


def start(arguments: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STOCKCAST, *arguments], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    assert "Traceback" not in out + err, err[-3000:]
    return process.returncode, out, err


def aware(value: object) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()


def registered_versions(context: Context, ticker: str) -> dict[str, object]:
    """Every registered version of ``ticker``'s model: its MLflow record, by version."""
    from mlflow import MlflowClient

    client = MlflowClient(context.settings.resolved_tracking_uri)
    return {str(v.version): v for v in client.search_model_versions(f"name='{model_name_for(ticker)}'")}


def wait_for(condition, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.1)


def test_three_commands_and_an_api_job_train_one_ticker_one_at_a_time(
    backend, environment, isolated_environment
):
    """Each trainer holds AAPL's lease from its plan to its alias move: the intervals from lease
    to decision never overlap, each decision gates against the champion the previous one left,
    every decision is recorded once, and the alias ends where the last decision says."""
    from stockcast.serving.app import create_app

    context = prepared(["AAPL"])
    with TestClient(create_app(context.settings)) as client:
        commands = [
            start(["train", "--tickers", "AAPL"], environment(), isolated_environment) for _ in range(3)
        ]
        accepted = client.post("/train", json={"tickers": ["AAPL"]}, headers={"X-API-Key": KEY})
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        outcomes = [finished(command) for command in commands]
        client.app.state.serving.jobs.wait(job_id, timeout=240)
        job = client.get(f"/jobs/{job_id}").json()
    assert [code for code, _, _ in outcomes] == [0, 0, 0], [err[-2000:] for _, _, err in outcomes]
    assert job["status"] == "succeeded" and job["error"] is None, job

    decisions = context.store.load_decisions("AAPL").sort_values("lease_acquired_at").reset_index(drop=True)
    trainers = {f"stockcast train on {HOST} pid {command.pid}" for command in commands}
    assert set(decisions["decided_by"]) == trainers | {f"job {job_id} on {HOST} pid {os.getpid()}"}
    assert len(decisions) == 4 and (decisions["action"] == "train").all()

    # One at a time: each interval from taking the lease to recording the decision ends before
    # the next begins, and the version each trainer registered was created inside its own.
    versions = registered_versions(context, "AAPL")
    spans = [(aware(row.lease_acquired_at), aware(row.decided_at)) for row in decisions.itertuples()]
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        assert previous_end <= next_start, spans
    for row, (began, ended) in zip(decisions.itertuples(), spans, strict=True):
        created = datetime.fromtimestamp(versions[row.challenger_version].creation_timestamp / 1000, UTC)
        assert began <= created <= ended, (row.challenger_version, began, created, ended)

    # Every decision once, each gated against the champion the previous decision left.
    assert (
        sorted(decisions["challenger_version"], key=int) == sorted(versions, key=int) == ["1", "2", "3", "4"]
    )
    champion = None
    for row in decisions.itertuples():
        assert (None if pd.isna(row.champion_version) else row.champion_version) == champion
        champion = row.challenger_version if row.promoted else champion
    assert context.registry.champion("AAPL").version == champion


@pytest.mark.fault(
    "SIGKILL of a process holding a ticker's training lease (mid-training, after registering its version)",
    "The lease expires STOCKCAST_TRAINING_LEASE_SECONDS after its last renewal; the next trainer, "
    "which waited, takes it then, trains and promotes; the killed one's version holds no alias",
)
def test_a_killed_holder_frees_the_ticker_when_its_lease_expires(environment, isolated_environment):
    context = prepared(["AAPL"])
    env = environment(STOCKCAST_TRAINING_LEASE_SECONDS="2", STOCKCAST_FAILPOINTS="train.registered=pause")
    held = HeldProcess(["train", "--tickers", "AAPL"], env, isolated_environment)
    held.wait_for("train.registered")
    held.kill()
    lapsed = context.store.lease_holder("AAPL")
    assert lapsed is not None and lapsed["owner"] == f"stockcast train on {HOST} pid {held.process.pid}"

    reports, failures = train_many(context, ["AAPL"], force=True)  # waits for the expiry
    assert not failures and reports[0].decision.promote
    decision = context.store.load_decisions("AAPL").iloc[-1]
    assert aware(decision["lease_acquired_at"]) >= lapsed["expires_at"]
    assert decision["decided_by"] == owner_of(default_activity())
    assert context.registry.champion("AAPL").version == reports[0].version == "2"
    assert not registered_versions(context, "AAPL")["1"].aliases


@pytest.mark.fault(
    "A trainer frozen (SIGSTOP) past its lease's expiry while another trainer takes the ticker, "
    "then resumed right before its alias move",
    "Its fence (renewal by token) fails: it exits 1 saying it lost the lease, moves no alias and "
    "records no decision; its version stays registered without an alias, the other's is champion",
)
def test_a_trainer_whose_lease_was_taken_over_cannot_move_the_alias(environment, isolated_environment):
    context = prepared(["AAPL"])
    go = isolated_environment / "resume"
    env = environment(
        STOCKCAST_TRAINING_LEASE_SECONDS="1", STOCKCAST_FAILPOINTS=f"train.registered=wait:{go}"
    )
    held = HeldProcess(["train", "--tickers", "AAPL"], env, isolated_environment)
    held.wait_for("train.registered")
    os.kill(held.process.pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: context.store.lease_holder("AAPL")["expires_at"] < datetime.now(UTC),
            "the frozen trainer's lease expiring",
        )
        reports, failures = train_many(context, ["AAPL"], force=True)
        assert not failures and reports[0].version == "2" and reports[0].decision.promote
    finally:
        os.kill(held.process.pid, signal.SIGCONT)
    go.touch()
    code, _, err = held.finish()
    assert "Traceback" not in err
    assert code == 1
    assert "AAPL: lost its training lease before the champion alias could move" in err
    assert "v1 stays registered without an alias" in err

    assert context.registry.champion("AAPL").version == "2"
    versions = registered_versions(context, "AAPL")
    assert not versions["1"].aliases and versions["1"].tags["decision"] == "not applied"
    decisions = context.store.load_decisions("AAPL")
    assert list(decisions["challenger_version"]) == ["2"], "the fenced-off trainer recorded nothing"


def test_run_passes_a_ticker_being_trained_by_and_train_waits_then_names_the_holder(
    environment, isolated_environment
):
    context = prepared(["AAPL", "MSFT"], end_date="2013-01-31")
    _, failures = train_many(context, ["AAPL", "MSFT"], force=True)
    assert not failures
    champions = {ticker: context.registry.champion(ticker).version for ticker in ("AAPL", "MSFT")}
    holder = Context(context.settings, activity="a test holding the lease").leases
    lease = holder.acquire("AAPL")
    try:
        # A month of new sessions makes both due (retrain after 5): MSFT is retrained, AAPL passed by.
        env = environment(
            STOCKCAST_TICKERS="AAPL,MSFT",
            STOCKCAST_RETRAIN_AFTER_DAYS="5",
            STOCKCAST_REPORTS_WHEN_DUE="false",
        )
        run = start(["run"], env, isolated_environment)
        short = environment(STOCKCAST_TRAINING_LEASE_WAIT_SECONDS="2")
        began = time.monotonic()
        waiting = [
            start(["train", "--tickers", "AAPL"], short, isolated_environment),
            start(["models", "promote", "AAPL", champions["AAPL"], "--force"], short, isolated_environment),
        ]
        refusals = [finished(command) for command in waiting]
        waited = time.monotonic() - began
        code, _, err = finished(run)
    finally:
        holder.release(lease)

    line = f"AAPL is being trained by {lease.owner} since {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
    for refused_code, _, refused_err in refusals:
        assert refused_code == 1
        assert refused_err.strip().splitlines()[-1] == (
            f"error: {line} (waited 2 s, STOCKCAST_TRAINING_LEASE_WAIT_SECONDS)"
        )
    assert waited >= 2

    assert code == 0, err[-3000:]
    assert f"warning: {line}; not trained by this run" in err
    decisions = context.store.load_decisions()
    assert (decisions["ticker"] == "AAPL").sum() == 1, "AAPL was neither trained nor promoted meanwhile"
    assert (decisions["ticker"] == "MSFT").sum() == 2
    assert context.registry.champion("AAPL").version == champions["AAPL"]
    forecasts = context.store.load_forecasts()
    latest = forecasts.sort_values("id").groupby("ticker").tail(1).set_index("ticker")
    assert latest.loc["AAPL", "model_version"] == champions["AAPL"], "AAPL forecast by its champion"
    assert latest.loc["MSFT", "model_version"] == context.registry.champion("MSFT").version
    assert str(latest.loc["AAPL", "as_of"]) == "2013-03-01" == str(latest.loc["MSFT", "as_of"])
