"""stockcast on Apache Airflow: the daily cycle and the weekly tuning as DAGs.

Each task runs the installed ``stockcast`` command line (the Airflow variable
``stockcast_bin``, i.e. ``AIRFLOW_VAR_STOCKCAST_BIN``; default ``stockcast`` on the PATH), so
Airflow keeps its own environment and its own pins: stockcast is never imported here. Both read the same ``STOCKCAST_*`` settings as every other entry point
(the tasks inherit the scheduler's environment, or a ``.env`` in their working directory).

``stockcast_daily`` (on ``STOCKCAST_DAILY_CRON`` in ``STOCKCAST_SCHEDULE_TIMEZONE``)::

    sessions -> trading -> ingest -> stored -> features -> per ticker [train -> predict]
        -> actuals -> monitor -> retrain -> export

- ``trading`` short-circuits the run on a day none of the tickers' exchanges trades (weekends,
  exchange holidays), as the Prefect flow does;
- ``ingest`` carries on with the tickers it stored (``--partial-ok``), like ``stockcast run``;
- each ticker is trained (where due) and then forecast in its own mapped group: a training
  that fails after its retries stops that ticker's forecast only; a ticker another process is
  training is passed by with a warning (``--when-busy skip``) and forecast with its champion;
- scoring, monitoring and retraining run once every ticker's group is done, whatever its end;
  the run is marked failed when any ticker's group failed (``every_ticker_forecast``).

``stockcast_weekly_tuning`` (on ``STOCKCAST_TUNE_CRON``): each ticker trained with Optuna
(``params.trials``, 20) through the promotion gate, one mapped task per ticker.

Every task is retried (``AIRFLOW_VAR_STOCKCAST_RETRIES``, 2, ``AIRFLOW_VAR_STOCKCAST_RETRY_DELAY_SECONDS``
apart, 300); re-running any stage is safe, as every stockcast command is.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task, task_group
from airflow.timetables.trigger import CronTriggerTimetable


def _setting(name: str, default: str) -> str:
    """A stockcast setting the schedule needs (the same variable stockcast reads)."""
    return os.environ.get(f"STOCKCAST_{name}") or default


def _variable(name: str, default: str) -> str:
    """One of the DAGs' own knobs, an Airflow variable set in the environment (read here
    without a metadata database lookup at parse time)."""
    return os.environ.get(f"AIRFLOW_VAR_{name.upper()}") or default


ZONE = _setting("SCHEDULE_TIMEZONE", "America/New_York")
DEFAULT_ARGS = {
    "owner": "stockcast",
    "retries": int(_variable("stockcast_retries", "2")),
    "retry_delay": timedelta(seconds=float(_variable("stockcast_retry_delay_seconds", "300"))),
}
START = datetime(2024, 1, 1)


def stockcast(*arguments: str) -> str:
    """The shell command running the installed stockcast with ``arguments``."""
    return shlex.join([_variable("stockcast_bin", "stockcast"), *arguments])


@task.bash
def sessions(logical_date: datetime | None = None, dag_run: Any = None) -> str:
    """Which tickers' exchanges trade on the run's day in the schedule's time zone (one JSON
    line, pushed to XCom): a scheduled run's day is the day it fires, a backfill's its own."""
    instant = logical_date or dag_run.run_after
    day = pendulum.instance(instant).in_timezone(ZONE).date()
    return stockcast("sessions", "--date", day.isoformat(), "--json")


@task.short_circuit
def trading(found: str) -> list[str]:
    """Today's trading tickers; none (a weekend, a holiday everywhere) skips the rest."""
    return list(json.loads(found)["trading"])


@dag(
    dag_id="stockcast_daily",
    description="stockcast's daily cycle: ingest, features, train where due, forecast, score, monitor, retrain",
    schedule=CronTriggerTimetable(_setting("DAILY_CRON", "30 18 * * 1-5"), timezone=ZONE),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["stockcast"],
)
def stockcast_daily() -> None:
    @task.bash
    def ingest(tickers: list[str]) -> str:
        return stockcast("ingest", "--tickers", ",".join(tickers), "--partial-ok", "--json")

    @task
    def stored(outcome: str) -> list[str]:
        return list(json.loads(outcome)["stored"])

    @task.bash
    def features() -> str:
        return stockcast("features")

    # One training at a time in a run, as the Prefect flow does: each is a process that already
    # uses the cores it is given (STOCKCAST_TRAINING_WORKERS, Dask).
    @task.bash(max_active_tis_per_dagrun=1)
    def train(ticker: str) -> str:
        return stockcast("train", "--tickers", ticker, "--no-force", "--when-busy", "skip")

    @task.bash
    def predict(ticker: str) -> str:
        return stockcast("predict", "--tickers", ticker)

    @task_group
    def ticker_day(ticker: str) -> None:
        """One ticker's training and forecast: its failure is its own."""
        train(ticker) >> predict(ticker)

    @task.bash(trigger_rule="all_done")
    def actuals() -> str:
        return stockcast("actuals")

    @task.bash(trigger_rule="all_done")
    def monitor() -> str:
        return stockcast("monitor")

    @task.bash(trigger_rule="all_done")
    def retrain() -> str:
        return stockcast("retrain", "--when-busy", "skip")

    @task.bash(trigger_rule="all_done")
    def export() -> str:
        """The analytics copy in ClickHouse, when STOCKCAST_CLICKHOUSE_URL is set."""
        return stockcast("export", "clickhouse", "--if-configured")

    @task
    def every_ticker_forecast() -> None:
        """Runs only when every ticker's group succeeded: otherwise it ends upstream_failed and
        the run is marked failed, as `stockcast run` exits 1 (the tickers that could be were
        forecast all the same)."""

    usable = stored(ingest(trading(sessions())))
    day = ticker_day.expand(ticker=usable)
    features_done = features()
    usable >> features_done >> day
    day >> actuals() >> monitor() >> retrain() >> export()
    day >> every_ticker_forecast()


@dag(
    dag_id="stockcast_weekly_tuning",
    description="stockcast's weekly tuning: Optuna-tuned candidates compete with the defaults through the gate",
    schedule=CronTriggerTimetable(_setting("TUNE_CRON", "0 6 * * 6"), timezone=ZONE),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"trials": Param(20, type="integer", minimum=1, description="Optuna trials per candidate")},
    tags=["stockcast"],
)
def stockcast_weekly_tuning() -> None:
    @task
    def every_ticker(found: str) -> list[str]:
        listed = json.loads(found)
        return [*listed["trading"], *listed["closed"]]

    @task.bash(max_active_tis_per_dagrun=1)
    def tune(ticker: str, params: dict | None = None) -> str:
        trials = str((params or {}).get("trials", 20))
        return stockcast("train", "--tickers", ticker, "--tune", trials, "--when-busy", "skip")

    tune.expand(ticker=every_ticker(sessions()))


stockcast_daily()
stockcast_weekly_tuning()
