"""The Airflow DAGs (deploy/airflow/dags) run by Airflow itself (issue 21), from its own
environment (.venv-airflow, `make airflow-env`): the DAGs import without errors, and
`airflow dags test` of the daily DAG on the bundled sample logs the same forecasts in
stockcast's store as `stockcast run` does, retries a training that fails once, lets the other
tickers be forecast when one ticker's training keeps failing, and does nothing on an exchange
holiday. Airflow's processes run under the suite's network guard like every command.

Outside the default suite (installing Airflow takes a minute, each DAG test about one and a
half): `make test-airflow` (STOCKCAST_AIRFLOW_TEST=1), which .ci/run calls after `make test`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.conftest import clean_environment

from stockcast.store.database import Store

pytestmark = pytest.mark.skipif(
    os.environ.get("STOCKCAST_AIRFLOW_TEST") != "1",
    reason="runs Apache Airflow from .venv-airflow (minutes): make test-airflow",
)

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
DAGS = ROOT / "deploy" / "airflow" / "dags"
STOCKCAST = Path(sys.executable).parent / "stockcast"
FAST = {
    "STOCKCAST_SOURCE": "sample",
    "STOCKCAST_START_DATE": "2010-01-01",
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_HORIZONS": "1,5",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "150",
}
MONDAY = "2024-07-08T22:30:00+00:00"  # 18:30 in New York, after the close
INDEPENDENCE_DAY = "2024-07-04T22:30:00+00:00"
FORECAST_COLUMNS = [
    "ticker", "horizon", "as_of", "target_date", "predicted_close", "lower", "upper", "model_kind"
]  # fmt: skip


@pytest.fixture
def airflow(tmp_path):
    """``airflow <args>`` in a fresh AIRFLOW_HOME (SQLite) reading deploy/airflow/dags; the
    stockcast settings of the run are passed as keyword arguments."""
    assert AIRFLOW.exists(), f"{AIRFLOW} is missing: run `make airflow-env`"
    home = tmp_path / "airflow"
    home.mkdir()

    def run(
        *args: str, dags: Path = DAGS, check: bool = True, **settings: str
    ) -> subprocess.CompletedProcess[str]:
        env = clean_environment(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            PYTHONWARNINGS="ignore",  # Airflow writes its warnings to stdout, before its JSON
            AIRFLOW_VAR_STOCKCAST_BIN=str(STOCKCAST),
            AIRFLOW_VAR_STOCKCAST_RETRY_DELAY_SECONDS="1",
            **settings,
        )
        done = subprocess.run(
            [str(AIRFLOW), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check:
            assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return done

    run("db", "migrate")
    run.home = home  # type: ignore[attr-defined]
    return run


def task_states(home: Path, dag_id: str) -> pd.DataFrame:
    with sqlite3.connect(home / "airflow.db") as connection:
        return pd.read_sql(
            "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ? ORDER BY task_id, map_index",
            connection,
            params=(dag_id,),
        )


def forecasts_in(data_dir: Path) -> pd.DataFrame:
    store = Store(f"sqlite:///{data_dir / 'stockcast.db'}")
    try:
        frame = store.load_forecasts()
    finally:
        store.dispose()
    return frame[FORECAST_COLUMNS].sort_values(["ticker", "horizon"]).reset_index(drop=True)


def import_errors(airflow: Any, dags: Path) -> tuple[int, list[dict[str, str]]]:
    """`airflow dags list-import-errors` parsing the folder itself (-l): exit code and errors."""
    done = airflow("dags", "list-import-errors", "-l", "-o", "json", dags=dags, check=False)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dags_import_without_errors_and_a_broken_one_is_reported(airflow, tmp_path):
    assert import_errors(airflow, DAGS) == (0, [])
    airflow("dags", "reserialize")
    listed = airflow("dags", "list").stdout
    assert "stockcast_daily" in listed and "stockcast_weekly_tuning" in listed

    # The check itself can fail: a DAG file that does not import is listed with its error.
    broken = tmp_path / "broken-dags"
    shutil.copytree(DAGS, broken)
    (broken / "stockcast_broken.py").write_text("from airflow.sdk import dag\nimport no_such_module  # dag\n")
    code, errors = import_errors(airflow, broken)
    assert code == 1 and [Path(error["filepath"]).name for error in errors] == ["stockcast_broken.py"]
    assert "no_such_module" in errors[0]["error"]


def test_the_daily_dag_forecasts_as_stockcast_run_does_and_retries_a_failed_training(airflow, tmp_path):
    tickers = {"STOCKCAST_TICKERS": "AAPL,MSFT,FB"}
    marker = tmp_path / "failed-once"
    dag_data = tmp_path / "dag-store"
    tested = airflow(
        "dags",
        "test",
        "stockcast_daily",
        MONDAY,
        check=False,
        **FAST,
        **tickers,
        STOCKCAST_DATA_DIR=str(dag_data),
        # AAPL's training fails once (its retry succeeds); FB's fails every time.
        STOCKCAST_FAILPOINTS=f"train.computing.AAPL=fail-once:{marker},train.computing.FB=fail",
    )
    log = tested.stdout + tested.stderr
    assert "DagRun Finished: dag_id=stockcast_daily" in log and "state=failed" in log, log[-4000:]
    assert marker.exists(), "the first training attempt failed on purpose"

    states = task_states(airflow.home, "stockcast_daily")
    trains = states[states["task_id"] == "ticker_day.train"].set_index("map_index")
    predicts = states[states["task_id"] == "ticker_day.predict"].set_index("map_index")
    # map indexes follow the tickers stored: AAPL, MSFT, FB
    assert list(trains["state"]) == ["success", "success", "failed"], states
    assert trains.loc[0, "try_number"] == 2, "AAPL's training failed once, then its retry succeeded"
    assert trains.loc[2, "try_number"] == 3, "FB's training was tried 1 + 2 retries times"
    assert list(predicts["state"]) == ["success", "success", "upstream_failed"], states
    after = states[states["task_id"].isin(["actuals", "monitor", "retrain"])]
    assert set(after["state"]) == {"success"}, "scoring and monitoring run whatever one ticker did"

    # The same forecasts as `stockcast run` with the same settings (FB's training failing) on
    # a store of its own.
    run_data = tmp_path / "run-store"
    ran = subprocess.run(
        [str(STOCKCAST), "run"],
        env=clean_environment(
            **FAST,
            **tickers,
            STOCKCAST_DATA_DIR=str(run_data),
            STOCKCAST_FAILPOINTS="train.computing.FB=fail",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 1 and "FB" in ran.stderr, ran.stdout + ran.stderr
    from_dag, from_run = forecasts_in(dag_data), forecasts_in(run_data)
    # Each of the two tickers at both horizons.
    assert list(zip(from_dag["ticker"], from_dag["horizon"], strict=True)) == [
        ("AAPL", 1), ("AAPL", 5), ("MSFT", 1), ("MSFT", 5)
    ]  # fmt: skip
    pd.testing.assert_frame_equal(from_dag, from_run)


def test_the_daily_dag_does_nothing_on_an_exchange_holiday(airflow, tmp_path):
    data = tmp_path / "store"
    airflow(
        "dags",
        "test",
        "stockcast_daily",
        INDEPENDENCE_DAY,
        **FAST,
        STOCKCAST_TICKERS="AAPL,MSFT",
        STOCKCAST_DATA_DIR=str(data),
    )
    states = task_states(airflow.home, "stockcast_daily").set_index("task_id")["state"]
    assert states["sessions"] == "success" and states["trading"] == "success"
    assert states.drop(["sessions", "trading"]).eq("skipped").all(), states
    assert not (data / "stockcast.db").exists(), "nothing was ingested, trained or forecast"


def test_the_weekly_tuning_dag_tunes_every_ticker_through_the_gate(airflow, tmp_path):
    from mlflow import MlflowClient

    data = tmp_path / "store"
    settings = {**FAST, "STOCKCAST_TICKERS": "AAPL,MSFT", "STOCKCAST_DATA_DIR": str(data)}
    for stage in ("ingest", "features"):
        done = subprocess.run(
            [str(STOCKCAST), stage],
            env=clean_environment(**settings),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    airflow("dags", "test", "stockcast_weekly_tuning", MONDAY, "-c", json.dumps({"trials": 2}), **settings)

    states = task_states(airflow.home, "stockcast_weekly_tuning")
    assert set(states["state"]) == {"success"} and len(states[states["task_id"] == "tune"]) == 2, states
    client = MlflowClient(f"sqlite:///{data / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("stockcast")
    assert experiment is not None
    tuned = client.search_runs([experiment.experiment_id], "tags.stage = 'tune'")
    assert sorted({run.data.tags["ticker"] for run in tuned}) == ["AAPL", "MSFT"]
    assert {run.data.metrics["trials"] for run in tuned} == {2.0}, "the DAG's trials parameter"
    store = Store(f"sqlite:///{data / 'stockcast.db'}")
    try:
        decided = store.load_decisions()
    finally:
        store.dispose()
    assert sorted(decided["ticker"]) == ["AAPL", "MSFT"], "each tuned ticker went through the gate once"
