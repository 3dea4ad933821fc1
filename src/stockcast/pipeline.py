"""The stages of the daily cycle, each callable alone (one CLI command each) or in order by
``run_cycle``. Stages pass tickers, dates and versions; data stays in the stores."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from stockcast.context import Context
from stockcast.features.feature_store import TTL
from stockcast.features.offline import FeatureRefresh, historical_training_rows, refresh_feature_store
from stockcast.forecasting.predict import (
    Forecast,
    ForecastUnavailableError,
    batch_request_id,
    check_freshness,
    feature_values,
    make_forecast,
    online_row,
)
from stockcast.ingest.ingest import IngestReport, ingest
from stockcast.lifecycle.distributed import compute_many
from stockcast.lifecycle.train import TrainingPlan, TrainingReport, finish_training, plan_training
from stockcast.monitoring.actuals import ActualsReport, fill_actuals
from stockcast.monitoring.monitor import TickerHealth, drifted, monitor
from stockcast.training.backtest import NotEnoughHistoryError

log = logging.getLogger(__name__)
Step = Callable[[str], None]


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


def _clearly_current(context: Context, ticker: str) -> bool:
    """True when fewer bars than ``retrain_after_days`` arrived since the champion's data end:
    its training rows (a subset) cannot be due either, so the feature store need not be read."""
    champion = context.registry.champion(ticker)
    if champion is None or "data_end" not in champion.tags:
        return False
    data_end = pd.Timestamp(champion.tags["data_end"]).date()
    newer = context.store.load_prices([ticker], start=data_end)
    return int((newer["date"].dt.date > data_end).sum()) < context.settings.retrain_after_days


def train_many(
    context: Context,
    tickers: list[str],
    force: bool = False,
    step: Step = _no_step,
    tune_trials: int = 0,
    trigger: str = "manual",
) -> tuple[list[TrainingReport], dict[str, str]]:
    """Train each ticker that needs it on point-in-time features from the feature store."""
    if not force:
        tickers = [ticker for ticker in tickers if not _clearly_current(context, ticker)]
    if not tickers:
        return [], {}
    rows_by_ticker = historical_training_rows(context, tickers)
    reports: list[TrainingReport] = []
    failures: dict[str, str] = {}
    plans: dict[str, tuple[pd.DataFrame, TrainingPlan]] = {}

    def planned() -> Iterator[tuple[str, pd.DataFrame, TrainingPlan]]:
        """Each due ticker's job, handed to the workers as soon as it is planned."""
        for ticker in tickers:
            rows = rows_by_ticker.get(ticker)
            if rows is None:
                failures[ticker] = (
                    "no features in the feature store; run `stockcast ingest` and `stockcast features`"
                )
                continue
            plan = plan_training(context, ticker, rows, force=force, tune_trials=tune_trials, trigger=trigger)
            if plan is not None:
                plans[ticker] = (rows, plan)
                yield ticker, rows, plan

    for ticker, outcome in compute_many(context.settings, planned()):
        step(f"training {ticker}")
        if isinstance(outcome, NotEnoughHistoryError):
            failures[ticker] = f"cannot train: {outcome}"
            continue
        if isinstance(outcome, BaseException):
            log.exception("training %s failed", ticker, exc_info=outcome)
            failures[ticker] = f"training failed: {type(outcome).__name__}: {outcome}"
            continue
        rows, plan = plans[ticker]
        reports.append(finish_training(context, rows, plan, outcome))
    return reports, failures


def forecast_many(
    context: Context, tickers: list[str], step: Step = _no_step
) -> tuple[list[Forecast], dict[str, str], int]:
    """Forecast each ticker from its online features with its champion; log the forecasts
    (once per ticker, day and model version)."""
    forecasts, failures, records = [], {}, []
    champions = {ticker: context.registry.champion(ticker) for ticker in tickers}
    for ticker, champion in champions.items():
        if champion is None:
            failures[ticker] = "no champion model; run `stockcast train` first"
    ready = [ticker for ticker in tickers if ticker not in failures]
    online = context.feature_store.online(ready) if ready else None
    for ticker in ready:
        step(f"forecasting {ticker}")
        champion = champions[ticker]
        assert champion is not None and online is not None
        try:
            row = online_row(online, ticker)
            check_freshness(ticker, row["date"].date(), context.store.latest_price_date(ticker), TTL)
        except ForecastUnavailableError as error:
            failures[ticker] = str(error)
            continue
        model = context.registry.load(ticker, champion.version)
        forecast = make_forecast(ticker, row, model, champion.name, champion.version)
        forecasts.append(forecast)
        records.append(forecast.record(batch_request_id(forecast), "batch", feature_values(row)))
    logged = context.store.log_forecasts(records)
    return forecasts, failures, logged


def retrain_drifted(
    context: Context, tickers: list[str], step: Step = _no_step
) -> tuple[list[TrainingReport], dict[str, str]]:
    """Retrain the tickers whose latest verdict is drift, through the one promotion gate. A
    ticker whose last training saw data up to fewer than ``drift_days`` sessions ago waits:
    retraining on almost the same data again would change nothing."""
    candidates = drifted(context, tickers)
    decisions = context.store.load_decisions()
    due = []
    for ticker in candidates:
        trained = decisions.loc[(decisions["ticker"] == ticker) & (decisions["action"] == "train")]
        if not trained.empty:
            latest = trained.iloc[-1]
            seen = latest["window_end"] if latest["window_end"] is not None else latest["decided_at"]
            through = pd.Timestamp(seen).date()
            newer = context.store.load_prices([ticker], start=through)
            sessions_since = int((newer["date"].dt.date > through).sum())
            if sessions_since < context.settings.drift_days:
                log.info(
                    "%s drifted, but its last training saw data up to %d session(s) ago; waiting",
                    ticker,
                    sessions_since,
                )
                continue
        due.append(ticker)
    if not due:
        return [], {}
    for ticker in due:
        step(f"retraining {ticker}")
    return train_many(context, due, force=True, trigger="drift")


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
    trained, training_failures = train_many(context, ready, step=step)
    report.trained = trained
    report.failures |= training_failures
    ready = [ticker for ticker in ready if ticker not in training_failures]
    report.forecasts, forecast_failures, report.forecasts_logged = forecast_many(context, ready, step)
    report.failures |= forecast_failures
    step("scoring forecasts")
    report.actuals = fill_actuals(context, tickers)
    step("monitoring")
    report.health = monitor(context, tickers, reports=reports, html=html)
    report.retrained, retrain_failures = retrain_drifted(context, ready, step)
    report.failures |= retrain_failures
    return report
