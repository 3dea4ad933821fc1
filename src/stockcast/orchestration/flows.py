"""Prefect flows over the pipeline's stages. No logic lives here: each task calls a stage
function from ``stockcast.pipeline`` or ``stockcast.monitoring`` for its tickers.

- Tasks that reach the outside world (the price source, the stores) retry with exponential
  backoff; the feature refresh is cached on a fingerprint of the stored prices, so a rerun with
  nothing new ingested skips it.
- Training and forecasting are mapped per ticker: a ticker that fails fails its own task run,
  is listed in the flow's result and in the log, and the others carry on. A ticker another
  process is training (it holds the ticker's lease) is skipped with a warning and listed as
  ``busy`` in the result: a scheduled run does not wait for it.
- Tasks build the stores from the environment (``STOCKCAST_*``), once per process, so the same
  flows run in-process, under ``stockcast flows serve`` or on a Prefect work pool.

`stockcast run` is the same cycle without Prefect (``pipeline.run_cycle``); these flows are for
a scheduler that retries and records runs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from stockcast.context import Context
from stockcast.horizons import horizon_label
from stockcast.settings import load_settings

_contexts: dict[str, Context] = {}
_lock = threading.Lock()
# Training rows read for a batch of mapped training tasks, by (flow run, tickers).
_batches: dict[tuple[Any, ...], dict[str, Any]] = {}


class TickerFailedError(RuntimeError):
    """One ticker's step failed; its task run fails with the reason."""


def current_context() -> Context:
    """The process's stores, built from the environment; changed settings (another data
    directory, another registry) get their own. Keyed on the settings, not on the environment
    itself: building the stores sets variables for the libraries (MLflow's, the S3 client's),
    which must not make the next task build them all again."""
    settings = load_settings()
    key = settings.model_dump_json()
    with _lock:
        if key not in _contexts:
            _contexts[key] = Context(settings, activity="a Prefect flow")
        return _contexts[key]


def _tickers(tickers: list[str] | None) -> list[str]:
    return [ticker.upper() for ticker in tickers] if tickers else current_context().settings.tickers


def _prices_fingerprint(task_context: Any, parameters: dict[str, Any]) -> str:
    """Cache key of the feature refresh: where the stores are, the stored price ranges, whether
    the feature table is there, and the feature code. The same key means the same outcome."""
    from pathlib import Path

    from stockcast.features import build
    from stockcast.features.feature_store import OFFLINE_TABLE_KEY

    context = current_context()
    settings = context.settings
    state = {
        "database": settings.resolved_database_url,
        "artifacts": settings.resolved_artifact_root,
        "online": settings.feast_online_store,
        "table": context.artifacts.exists(OFFLINE_TABLE_KEY),
        "prices": sorted((ticker, str(span)) for ticker, span in context.store.price_ranges().items()),
        "code": hashlib.sha256(Path(build.__file__).read_bytes()).hexdigest(),
    }
    return "features-" + hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:40]


def _unless_ticker_failed(task: Any, task_run: Any, state: Any) -> bool:
    """Retry outside-world errors; a ticker that cannot be trained or forecast will not get
    better by trying again."""
    return not isinstance(getattr(state, "data", None), TickerFailedError)


@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5)
def ingest_prices(tickers: list[str]) -> dict[str, Any]:
    from stockcast.ingest.ingest import ingest

    report = ingest(current_context(), tickers)
    logger = get_run_logger()
    if report.note:
        logger.warning(report.note)
    for ticker, reason in report.failures.items():
        logger.error("%s: %s", ticker, reason)
    return {"rows": report.rows_written, "failures": report.failures, "source": report.source}


@task(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_key_fn=_prices_fingerprint,
    cache_expiration=timedelta(days=1),
)
def refresh_features() -> dict[str, Any]:
    from stockcast.features.offline import refresh_feature_store

    refreshed = refresh_feature_store(current_context())
    get_run_logger().info(
        "feature table: %d rows; %d materialized", refreshed.rows, refreshed.materialized.rows
    )
    return {"rows": refreshed.rows, "materialized": refreshed.materialized.rows}


class _BatchRows(Mapping[str, Any]):
    """The training rows of the tickers mapped together in a flow run, read in one
    point-in-time join when the first ticker that is due asks for its own (never, on a day none
    is), as `stockcast run` makes one join for all its tickers: a join per ticker reads the
    whole offline table each time (about a second a ticker, which made the daily flow at 50
    tickers 2.8 times as long as the plain cycle). Another flow run starts afresh."""

    def __init__(self, batch: list[str]):
        self.batch = sorted(batch)

    def _rows(self) -> dict[str, Any]:
        from prefect.runtime import flow_run

        from stockcast.features.offline import historical_training_rows

        context = current_context()
        key = (str(flow_run.id), *self.batch)
        with _lock:
            if key not in _batches:
                _batches.clear()  # an earlier run's rows are never served
                _batches[key] = historical_training_rows(context, self.batch)
            return _batches[key]

    def __getitem__(self, ticker: str) -> Any:
        return self._rows()[ticker]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows())

    def __len__(self) -> int:
        return len(self._rows())


def _trained(ticker: str) -> None:
    """A trained ticker's rows are let go (a failed one keeps them for its retry)."""
    with _lock:
        for rows in _batches.values():
            rows.pop(ticker, None)


@task(retries=1, retry_delay_seconds=30, retry_condition_fn=_unless_ticker_failed)
def train_one(
    ticker: str,
    force: bool = False,
    tune_trials: int = 0,
    trigger: str = "manual",
    batch: list[str] | None = None,
) -> dict[str, Any]:
    """Train one ticker; ``batch``: the tickers mapped beside it in this flow run, whose
    training rows are read together."""
    from stockcast.pipeline import train_round

    rows = _BatchRows(batch) if batch else None
    done = train_round(
        current_context(),
        [ticker],
        force=force,
        tune_trials=tune_trials,
        trigger=trigger,
        busy="skip",
        rows_by_ticker=rows,
    )
    if ticker in done.failures:
        raise TickerFailedError(f"{ticker}: {done.failures[ticker]}")
    _trained(ticker)
    logger = get_run_logger()
    if ticker in done.busy:
        logger.warning("%s; skipped", done.busy[ticker])
        return {"ticker": ticker, "trained": False, "busy": done.busy[ticker]}
    for named, reason in done.failures.items():  # a longer horizon alone: the others serve
        logger.warning("%s: %s", named, reason)
    if not done.reports:
        return {"ticker": ticker, "trained": False, "failures": done.failures}
    for report in done.reports:
        logger.info(
            "%s: v%s %s %s: %s",
            horizon_label(ticker, report.horizon),
            report.version,
            report.spec_key,
            "promoted" if report.decision.promote else "kept",
            report.decision.reason,
        )
    first = done.reports[0]
    return {
        "ticker": ticker,
        "trained": True,
        "version": first.version,
        "promoted": first.decision.promote,
        "horizons": [
            {"horizon": report.horizon, "version": report.version, "promoted": report.decision.promote}
            for report in done.reports
        ],
        "failures": done.failures,
    }


@task(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_condition_fn=_unless_ticker_failed,
)
def forecast_one(ticker: str) -> dict[str, Any]:
    from stockcast.pipeline import forecast_many

    forecasts, failures, logged = forecast_many(current_context(), [ticker])
    if ticker in failures:
        raise TickerFailedError(f"{ticker}: {failures[ticker]}")
    if not forecasts:
        raise TickerFailedError(f"{ticker}: {'; '.join(failures.values()) or 'no forecast'}")
    for named, reason in failures.items():
        get_run_logger().warning("%s: %s", named, reason)
    forecast = forecasts[0]  # the shortest horizon's
    return {
        "ticker": ticker,
        "as_of": forecast.as_of.isoformat(),
        "target_date": forecast.target_date.isoformat(),
        "predicted_close": forecast.predicted_close,
        "model_version": forecast.model_version,
        "horizons": [
            {
                "horizon": each.horizon,
                "target_date": each.target_date.isoformat(),
                "predicted_close": each.predicted_close,
                "model_version": each.model_version,
            }
            for each in forecasts
        ],
        "failures": failures,
        "logged": logged,
    }


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5))
def score_actuals(tickers: list[str]) -> dict[str, Any]:
    from stockcast.monitoring.actuals import fill_actuals

    report = fill_actuals(current_context(), tickers)
    return {"filled": report.filled, "still_open": report.still_open}


@task(retries=1, retry_delay_seconds=30)
def monitor_tickers(tickers: list[str], reports: bool | None = None) -> dict[str, str]:
    from stockcast.monitoring.monitor import monitor

    healths = monitor(current_context(), tickers, reports=reports)
    logger = get_run_logger()
    for health in healths:
        (logger.warning if health.status in ("watch", "drift") else logger.info)(
            "%s: %s: %s", horizon_label(health.ticker, health.horizon), health.status, health.reason
        )
    return {horizon_label(health.ticker, health.horizon): health.status for health in healths}


@task
def retrain_drifted_tickers(tickers: list[str]) -> dict[str, Any]:
    from stockcast.pipeline import retrain_round

    done = retrain_round(current_context(), tickers, busy="skip")
    for reason in done.busy.values():
        get_run_logger().warning("%s; skipped", reason)
    return {
        "retrained": [horizon_label(report.ticker, report.horizon) for report in done.reports],
        "failures": done.failures,
        "busy": done.busy,
    }


@task
def export_analytics() -> dict[str, Any] | str:
    """The analytics copy in ClickHouse (STOCKCAST_CLICKHOUSE_URL), as `stockcast run` makes
    it: a failure is a warning, and the next export sends what this one could not."""
    from stockcast.pipeline import export_analytics as export_now

    exported, problem = export_now(current_context())
    if problem is not None:
        get_run_logger().warning("analytics not exported: %s; the next export sends it", problem)
        return f"not exported: {problem}"
    return {"forecasts": exported.forecasts, "monitoring": exported.monitoring}


def _outcomes(tickers: list[str], futures: list[Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Results of mapped per-ticker task runs (in the order of ``tickers``); a failed one is
    reported, not raised."""
    wait(futures)
    done, failed = [], {}
    for ticker, future in zip(tickers, futures, strict=True):
        state = future.state
        if state.is_completed():
            done.append(future.result())
        else:
            error = state.result(raise_on_failure=False)
            failed[ticker] = str(error).removeprefix(f"{ticker}: ")
    if failed:
        get_run_logger().error("failed tickers: %s", "; ".join(f"{t} ({why})" for t, why in failed.items()))
    return done, failed


def _busy(trained: list[dict[str, Any]]) -> dict[str, str]:
    """The tickers a training flow passed by because another process was training them."""
    return {result["ticker"]: result["busy"] for result in trained if "busy" in result}


def _trading_today(tickers: list[str]) -> list[str]:
    """The tickers whose exchange has a session today (in its own time zone)."""
    from stockcast.calendars import calendar_for, exchange_today

    now = current_context().now()
    return [
        ticker
        for ticker in tickers
        if calendar_for(ticker).is_session(exchange_today(ticker, now).isoformat())
    ]


# The flows share one worker thread: the stages share the process's stores, and training's
# heavy part already runs in parallel where configured (Dask, or a local process pool).
SERIAL: Any = ThreadPoolTaskRunner(max_workers=1)


@flow(name="stockcast-daily", task_runner=SERIAL, log_prints=True)
def daily(tickers: list[str] | None = None, only_trading_days: bool = False) -> dict[str, Any]:
    """Ingest, refresh features, train where due, forecast, score, monitor, retrain on drift."""
    names = _tickers(tickers)
    if only_trading_days:
        names = _trading_today(names)
        if not names:
            get_run_logger().info("no exchange of these tickers trades today; nothing to do")
            return {"skipped": "not a trading day"}
    ingested = ingest_prices(names)
    usable = [ticker for ticker in names if ticker not in ingested["failures"]]
    refresh_features()
    trained, training_failures = _outcomes(
        usable, train_one.map(usable, trigger="scheduled", batch=unmapped(usable))
    )
    ready = [ticker for ticker in usable if ticker not in training_failures]
    forecasts, forecast_failures = _outcomes(ready, forecast_one.map(ready))
    actuals = score_actuals(names)
    statuses = monitor_tickers(names)
    retrained = retrain_drifted_tickers(ready)
    exported = export_analytics() if current_context().settings.clickhouse_url is not None else None
    return {
        "exported": exported,
        "forecasts": forecasts,
        "actuals": actuals,
        "statuses": statuses,
        "retrained": retrained["retrained"],
        "busy": {**_busy(trained), **retrained["busy"]},
        "failures": {
            **ingested["failures"],
            **training_failures,
            **forecast_failures,
            **retrained["failures"],
        },
    }


@flow(name="stockcast-train", task_runner=SERIAL)
def train(tickers: list[str] | None = None, force: bool = True) -> dict[str, Any]:
    """Backtest, register and gate the given tickers (all configured ones by default)."""
    names = _tickers(tickers)
    done, failed = _outcomes(names, train_one.map(names, force=force, batch=unmapped(names)))
    return {"trained": done, "busy": _busy(done), "failures": failed}


@flow(name="stockcast-tune", task_runner=SERIAL)
def tune(tickers: list[str] | None = None, trials: int = 20) -> dict[str, Any]:
    """Weekly: Optuna-tuned candidates compete with the defaults through the promotion gate."""
    names = _tickers(tickers)
    done, failed = _outcomes(
        names, train_one.map(names, force=True, tune_trials=trials, batch=unmapped(names))
    )
    return {"trained": done, "busy": _busy(done), "failures": failed}


@flow(name="stockcast-monitor", task_runner=SERIAL)
def monitoring(tickers: list[str] | None = None) -> dict[str, Any]:
    """Score what can be scored, then monitor."""
    names = _tickers(tickers)
    return {"actuals": score_actuals(names), "statuses": monitor_tickers(names)}


FLOWS: dict[str, Any] = {"daily": daily, "train": train, "tune": tune, "monitor": monitoring}


def deployments() -> list[Any]:
    """The flows with their schedules from settings, for `stockcast flows serve`."""
    from prefect.schedules import Cron

    settings = current_context().settings
    zone = settings.schedule_timezone
    return [
        daily.to_deployment(
            name="daily",
            schedule=Cron(settings.daily_cron, timezone=zone),
            parameters={"only_trading_days": True},
        ),
        tune.to_deployment(name="weekly-tuning", schedule=Cron(settings.tune_cron, timezone=zone)),
        train.to_deployment(name="train"),
        monitoring.to_deployment(name="monitor"),
    ]
