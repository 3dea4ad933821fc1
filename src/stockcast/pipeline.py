"""The stages of the daily cycle, each callable alone (one CLI command each) or in order by
``run_cycle``. Stages pass tickers, dates and versions; data stays in the stores."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from stockcast.context import Context
from stockcast.features.build import for_horizon
from stockcast.features.feature_store import TTL
from stockcast.features.offline import FeatureRefresh, historical_training_rows, refresh_feature_store
from stockcast.forecasting.predict import (
    Forecast,
    ForecastUnavailableError,
    batch_request_id,
    check_freshness,
    feature_values,
    make_forecast,
    online_rows,
    row_of,
)
from stockcast.horizons import horizon_label
from stockcast.ingest.ingest import IngestReport, ingest
from stockcast.lifecycle.distributed import compute_many
from stockcast.lifecycle.train import TrainingPlan, TrainingReport, finish_training, plan_training
from stockcast.monitoring.actuals import ActualsReport, fill_actuals
from stockcast.monitoring.monitor import TickerHealth, drifted, monitor
from stockcast.store.leases import LeaseHeldError, LeaseLostError, TrainingLease
from stockcast.training.backtest import NotEnoughHistoryError

log = logging.getLogger(__name__)
Step = Callable[[str], None]
# What a training does about a ticker another process is training: wait for it (interactive
# commands, API jobs; up to STOCKCAST_TRAINING_LEASE_WAIT_SECONDS) or pass it by (scheduled runs).
Busy = Literal["wait", "skip"]


def _no_step(_: str) -> None:
    return None


@dataclass
class CycleReport:
    ingest: IngestReport | None = None
    features: FeatureRefresh | None = None
    trained: list[TrainingReport] = field(default_factory=list)
    forecasts: list[Forecast] = field(default_factory=list)
    forecasts_logged: int = 0
    actuals: ActualsReport | None = None
    health: list[TickerHealth] = field(default_factory=list)
    retrained: list[TrainingReport] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    # Tickers due for training that another process was training: why, in one line each.
    busy: dict[str, str] = field(default_factory=dict)
    # The analytics copy (STOCKCAST_CLICKHOUSE_URL): what was sent, or why nothing was.
    exported: Any = None
    export_problem: str | None = None


@dataclass
class TrainingRound:
    """What training several tickers did: a report per trained ticker, why each failed one
    failed, and, for each ticker another trainer held, the line naming it."""

    reports: list[TrainingReport] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    busy: dict[str, str] = field(default_factory=dict)


def _clearly_current(context: Context, ticker: str) -> bool:
    """True when, at every horizon, fewer labelled sessions than ``retrain_after_days`` arrived
    since the champion's data end: its training rows (a subset) cannot be due either, so the
    feature store need not be read. (At horizon h the newest h bars carry no label yet.)"""
    ends = []
    for horizon in context.settings.horizons:
        champion = context.registry.champion(ticker, horizon)
        if champion is None or "data_end" not in champion.tags:
            return False
        ends.append((horizon, pd.Timestamp(champion.tags["data_end"]).date()))
    newer = context.store.load_prices([ticker], start=min(end for _, end in ends))["date"].dt.date
    return all(
        int((newer > data_end).sum()) - (horizon - 1) < context.settings.retrain_after_days
        for horizon, data_end in ends
    )


class _LeasedTraining:
    """One round's leases: taken per ticker before its plan, released once its decision is
    applied (or it failed); leases the caller took (``held``) are only used."""

    def __init__(self, context: Context, busy: Busy, held: Mapping[str, TrainingLease] | None):
        self.context = context
        self.busy = busy
        self.held = dict(held or {})
        self.owned: dict[str, TrainingLease] = {}
        self.done = TrainingRound()
        self.plans: dict[tuple[str, int], tuple[pd.DataFrame, TrainingPlan, TrainingLease]] = {}
        self.unfinished: dict[str, int] = {}  # per ticker, its horizons not finished yet

    def take(self, ticker: str) -> TrainingLease | None:
        """The ticker's lease, or None (recorded as busy) when another process holds it."""
        if ticker in self.held:
            return self.held[ticker]
        try:
            lease = self.context.leases.acquire(ticker, wait_seconds=0 if self.busy == "skip" else None)
        except LeaseHeldError as error:
            log.info("%s", error)  # the caller reports it (a warning, or an error after a wait)
            self.done.busy[ticker] = str(error)
            return None
        self.owned[ticker] = lease
        return lease

    def release(self, ticker: str) -> None:
        lease = self.owned.pop(ticker, None)
        if lease is not None:
            self.context.leases.release(lease)

    def release_all(self) -> None:
        for ticker in list(self.owned):
            self.release(ticker)

    def jobs(
        self,
        order: list[str],
        rows_by_ticker: Mapping[str, pd.DataFrame],
        force: bool,
        tune_trials: int,
        trigger: str,
        only: Mapping[str, Sequence[int]] | None = None,
    ) -> Iterator[tuple[tuple[str, int], pd.DataFrame, TrainingPlan]]:
        """Each due (ticker, horizon)'s job, handed to the workers as soon as it is planned.
        One lease covers all of a ticker's horizons: it is released after the last."""
        context = self.context
        for ticker in order:
            labelled = rows_by_ticker.get(ticker)
            if labelled is None:
                self.done.failures[ticker] = (
                    "no features in the feature store; run `stockcast ingest` and `stockcast features`"
                )
                continue
            lease = self.take(ticker)
            if lease is None:
                continue
            jobs = []
            horizons = context.settings.horizons if only is None else only.get(ticker, [])
            for horizon in horizons:
                rows = for_horizon(labelled, horizon)
                plan = plan_training(
                    context,
                    ticker,
                    rows,
                    force=force,
                    tune_trials=tune_trials,
                    trigger=trigger,
                    horizon=horizon,
                )
                if plan is not None:
                    jobs.append((rows, plan))
            if not jobs:
                self.release(ticker)
                continue
            self.unfinished[ticker] = len(jobs)
            for rows, plan in jobs:
                self.plans[(ticker, plan.horizon)] = (rows, plan, lease)
                yield (ticker, plan.horizon), rows, plan


def train_round(
    context: Context,
    tickers: list[str],
    force: bool = False,
    step: Step = _no_step,
    tune_trials: int = 0,
    trigger: str = "manual",
    busy: Busy = "wait",
    held: Mapping[str, TrainingLease] | None = None,
    rows_by_ticker: Mapping[str, pd.DataFrame] | None = None,
    only: Mapping[str, Sequence[int]] | None = None,
) -> TrainingRound:
    """Train each ticker that needs it (at every configured horizon, or at those ``only`` names
    for it) on point-in-time features from the feature store (or on
    ``rows_by_ticker`` when the caller read them), each while holding its training lease: from
    the plan (the champion it gates against is read under the lease) to the gate's alias move.
    The driver holds the leases while workers compute. A ticker another process trains is
    waited for or passed by (``busy``); leases in ``held`` were taken by the caller, which
    releases them."""
    leases = _LeasedTraining(context, busy, held)
    done = leases.done
    if not force:
        tickers = [ticker for ticker in tickers if not _clearly_current(context, ticker)]
    if not tickers:
        return done
    if rows_by_ticker is None:
        rows_by_ticker = historical_training_rows(context, tickers)
    settings = context.settings
    # Workers elsewhere get every job at once, so the driver holds several leases at a time: it
    # takes them in one global order, so that two drivers never wait for each other in a cycle.
    # Inline, each lease is released before the next is taken.
    order = sorted(tickers) if settings.dask_address or settings.training_workers > 1 else tickers
    planned = leases.jobs(
        order, rows_by_ticker, force=force, tune_trials=tune_trials, trigger=trigger, only=only
    )
    plans, unfinished = leases.plans, leases.unfinished
    try:
        for (ticker, horizon), outcome in compute_many(settings, planned):
            step(f"training {horizon_label(ticker, horizon)}")
            named = horizon_label(ticker, horizon)
            try:
                if isinstance(outcome, NotEnoughHistoryError):
                    done.failures[named] = f"cannot train: {outcome}"
                elif isinstance(outcome, BaseException):
                    log.exception("training %s failed", horizon_label(ticker, horizon), exc_info=outcome)
                    done.failures[named] = f"training failed: {type(outcome).__name__}: {outcome}"
                else:
                    rows, plan, lease = plans[(ticker, horizon)]
                    done.reports.append(finish_training(context, rows, plan, outcome, lease))
            except LeaseLostError as error:
                log.info("%s", error)  # reported as the ticker's failure
                done.failures[named] = str(error)
            finally:
                unfinished[ticker] -= 1
                if unfinished[ticker] == 0:
                    leases.release(ticker)
    finally:
        leases.release_all()
    return done


def train_many(
    context: Context,
    tickers: list[str],
    force: bool = False,
    step: Step = _no_step,
    tune_trials: int = 0,
    trigger: str = "manual",
    busy: Busy = "wait",
    rows_by_ticker: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[list[TrainingReport], dict[str, str]]:
    """``train_round`` for callers that count a ticker another trainer held as failed."""
    done = train_round(
        context, tickers, force, step, tune_trials, trigger, busy, rows_by_ticker=rows_by_ticker
    )
    return done.reports, {**done.failures, **done.busy}


def forecast_many(
    context: Context, tickers: list[str], step: Step = _no_step
) -> tuple[list[Forecast], dict[str, str], int]:
    """Forecast each ticker at every configured horizon from its online features with that
    horizon's champion; log the forecasts (once per ticker, day, horizon and model version)."""
    from stockcast.registry.mlflow_registry import model_name_for

    forecasts, failures, records = [], {}, []
    horizons = context.settings.horizons
    # Every champion's version from one listing of the registry's aliases, not a request per
    # ticker and horizon (1,500 at 500 tickers and three horizons).
    aliased = context.registry.aliased_all(tickers, horizons) if tickers else {}
    champions = {
        (ticker, horizon): aliased.get((ticker, horizon)) for ticker in tickers for horizon in horizons
    }
    for (ticker, horizon), version in champions.items():
        if version is None:
            failures[horizon_label(ticker, horizon)] = "no champion model; run `stockcast train` first"
    ready = [ticker for ticker in tickers if any(champions[(ticker, horizon)] for horizon in horizons)]
    rows = online_rows(context.feature_store.online(ready)) if ready else {}
    newest = context.store.latest_price_dates(ready) if ready else {}
    for ticker in ready:
        step(f"forecasting {ticker}")
        try:
            row = row_of(rows, ticker)
            check_freshness(ticker, row["date"].date(), newest.get(ticker), TTL)
        except ForecastUnavailableError as error:
            failures[ticker] = str(error)
            continue
        features = feature_values(row)
        for horizon in horizons:
            version = champions[(ticker, horizon)]
            if version is None:
                continue
            model = context.registry.load(ticker, version, horizon)
            forecast = make_forecast(ticker, row, model, model_name_for(ticker, horizon), version)
            forecasts.append(forecast)
            records.append(forecast.record(batch_request_id(forecast), "batch", features))
    logged = context.store.log_forecasts(records)
    return forecasts, failures, logged


def due_for_retraining(context: Context, tickers: list[str]) -> dict[str, list[int]]:
    """The horizons whose latest verdict is drift, per ticker. A model whose last training saw
    data up to fewer than ``drift_days`` sessions ago waits: retraining on almost the same data
    again would change nothing."""
    candidates = drifted(context, tickers)
    decisions = context.store.load_decisions(horizon=None)
    due: dict[str, list[int]] = {}
    for ticker, horizons in candidates.items():
        for horizon in horizons:
            trained = decisions.loc[
                (decisions["ticker"] == ticker)
                & (decisions["horizon"] == horizon)
                & (decisions["action"] == "train")
            ]
            if not trained.empty:
                latest = trained.iloc[-1]
                seen = latest["window_end"] if latest["window_end"] is not None else latest["decided_at"]
                through = pd.Timestamp(seen).date()
                newer = context.store.load_prices([ticker], start=through)
                # The window's last origin was scored by the bar h sessions after it.
                sessions_since = int((newer["date"].dt.date > through).sum()) - (horizon - 1)
                if sessions_since < context.settings.drift_days:
                    log.info(
                        "%s drifted, but its last training saw data up to %d session(s) ago; waiting",
                        horizon_label(ticker, horizon),
                        max(sessions_since, 0),
                    )
                    continue
            due.setdefault(ticker, []).append(horizon)
    return due


def retrain_round(
    context: Context, tickers: list[str], step: Step = _no_step, busy: Busy = "wait"
) -> TrainingRound:
    """Retrain the drifted models that are due (only their horizons) through the one
    promotion gate."""
    due = due_for_retraining(context, tickers)
    if not due:
        return TrainingRound()
    for ticker, horizons in due.items():
        for horizon in horizons:
            step(f"retraining {horizon_label(ticker, horizon)}")
    return train_round(context, list(due), force=True, trigger="drift", busy=busy, only=due)


def retrain_drifted(
    context: Context, tickers: list[str], step: Step = _no_step
) -> tuple[list[TrainingReport], dict[str, str]]:
    """``retrain_round`` for callers that count a ticker another trainer held as failed."""
    done = retrain_round(context, tickers, step)
    return done.reports, {**done.failures, **done.busy}


def run_cycle(
    context: Context,
    tickers: list[str],
    step: Step = _no_step,
    reports: bool | None = None,
    html: bool = True,
) -> CycleReport:
    """Ingest, validate, refresh the feature store, train where needed, forecast; then score
    the forecasts whose day has come, monitor, and retrain what drifted. Forecasts come first:
    a slow retraining never delays the day's answers, and a new champion serves tomorrow."""
    report = CycleReport()
    step("ingesting prices")
    report.ingest = ingest(context, tickers)
    report.failures |= report.ingest.failures
    ready = [ticker for ticker in tickers if ticker not in report.failures]
    step("materializing features")
    report.features = refresh_feature_store(context)
    # Scheduled: a ticker another process is training is passed by and keeps its champion.
    trained = train_round(context, ready, step=step, busy="skip")
    report.trained = trained.reports
    report.failures |= trained.failures
    report.busy |= trained.busy
    ready = [ticker for ticker in ready if ticker not in trained.failures]
    report.forecasts, forecast_failures, report.forecasts_logged = forecast_many(context, ready, step)
    report.failures |= forecast_failures
    step("scoring forecasts")
    report.actuals = fill_actuals(context, tickers)
    step("monitoring")
    report.health = monitor(context, tickers, reports=reports, html=html)
    retrained = retrain_round(context, ready, step, busy="skip")
    report.retrained = retrained.reports
    report.failures |= retrained.failures
    report.busy |= retrained.busy
    if context.settings.clickhouse_url is not None:
        step("exporting to ClickHouse")
        report.exported, report.export_problem = export_analytics(context)
    return report


def export_analytics(context: Context) -> tuple[Any, str | None]:
    """Copy what changed to ClickHouse; a failure is reported, never raised: the store is the
    record, and the next export sends what this one could not."""
    from stockcast.analytics.clickhouse import ClickHouseError, export

    try:
        return export(context), None
    except ClickHouseError as error:
        log.warning("analytics export skipped: %s; the next export sends what it kept back", error)
        return None, str(error)
    except Exception as error:
        log.exception("analytics export failed; the next export sends what it kept back")
        return None, f"the analytics export failed: {type(error).__name__}: {error}"
