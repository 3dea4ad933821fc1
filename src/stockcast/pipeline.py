"""The stages of the daily cycle, each callable alone (one CLI command each) or in order by
``run_cycle``. Stages pass tickers, dates and versions; data stays in the stores."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from stockcast.context import Context
from stockcast.features.offline import feature_table, latest_row, write_offline_table
from stockcast.forecasting.predict import Forecast, batch_request_id, feature_values, make_forecast
from stockcast.ingest.ingest import IngestReport, ingest
from stockcast.training.backtest import NotEnoughHistoryError
from stockcast.training.train import TrainingReport, train_ticker

log = logging.getLogger(__name__)
Step = Callable[[str], None]


def _no_step(_: str) -> None:
    return None


@dataclass
class CycleReport:
    ingest: IngestReport | None = None
    features_url: str | None = None
    trained: list[TrainingReport] = field(default_factory=list)
    forecasts: list[Forecast] = field(default_factory=list)
    forecasts_logged: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def build_and_store_features(context: Context, tickers: list[str]) -> tuple[pd.DataFrame, str]:
    features = feature_table(context, tickers)
    return features, write_offline_table(context, features)


def train_many(
    context: Context,
    tickers: list[str],
    features: pd.DataFrame,
    force: bool = False,
    step: Step = _no_step,
) -> tuple[list[TrainingReport], dict[str, str]]:
    reports, failures = [], {}
    for ticker in tickers:
        step(f"training {ticker}")
        try:
            report = train_ticker(context, ticker, features, force=force)
        except NotEnoughHistoryError as error:
            failures[ticker] = f"cannot train: {error}"
            continue
        if report is not None:
            reports.append(report)
    return reports, failures


def forecast_many(
    context: Context, tickers: list[str], features: pd.DataFrame, step: Step = _no_step
) -> tuple[list[Forecast], dict[str, str], int]:
    """Forecast each ticker with its champion and log the batch forecasts (once per day)."""
    forecasts, failures, records = [], {}, []
    for ticker in tickers:
        step(f"forecasting {ticker}")
        champion = context.registry.champion(ticker)
        if champion is None:
            failures[ticker] = "no champion model; run `stockcast train` first"
            continue
        row = latest_row(features, ticker)
        if row is None:
            failures[ticker] = "no complete feature row for the newest bar (too little history)"
            continue
        model = context.registry.load(ticker, champion.version)
        forecast = make_forecast(ticker, row, model, champion.name, champion.version)
        forecasts.append(forecast)
        records.append(forecast.record(batch_request_id(forecast), "batch", feature_values(row)))
    logged = context.store.log_forecasts(records)
    return forecasts, failures, logged


def run_cycle(context: Context, tickers: list[str], step: Step = _no_step) -> CycleReport:
    """Ingest, validate, build features, train where needed, forecast."""
    report = CycleReport()
    step("ingesting prices")
    report.ingest = ingest(context, tickers)
    report.failures |= report.ingest.failures
    ready = [ticker for ticker in tickers if ticker not in report.failures]
    step("building features")
    features, report.features_url = build_and_store_features(context, ready)
    trained, training_failures = train_many(context, ready, features, step=step)
    report.trained = trained
    report.failures |= training_failures
    ready = [ticker for ticker in ready if ticker not in training_failures]
    report.forecasts, forecast_failures, report.forecasts_logged = forecast_many(
        context, ready, features, step
    )
    report.failures |= forecast_failures
    return report
