"""`stockcast monitor`: per ticker and horizon, how its champion is doing in production and
whether its inputs still look like what it was trained on. One row per ticker, horizon and day
goes to the ``monitoring`` table; the Evidently reports (of the shortest horizon's champion: the
inputs are the same at every horizon) go to the artifact store.

The step reads what it needs for all its tickers at once (their bars, their scored forecasts,
their registered versions: a few queries, not a few per ticker), computes every ticker's figures
from those, among them the daily data-drift figures (``feature_drift.py``, without Evidently),
writes the Evidently reports of the tickers whose reports are due, and stores the rows together.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stockcast.monitoring.actuals import daily_outcomes
from stockcast.monitoring.drift import DRIFT, OK, UNKNOWN, WATCH, DriftRule, Performance, assess
from stockcast.monitoring.feature_drift import drift_windows, feature_drift

if TYPE_CHECKING:
    from stockcast.context import Context
    from stockcast.registry.mlflow_registry import RegisteredVersion

log = logging.getLogger(__name__)


@dataclass
class TickerHealth:
    ticker: str
    as_of: date
    model_version: str | None
    performance: Performance
    backtest_rmse: float | None
    drift_share: float | None
    drifted_features: list[str]
    status: str
    reason: str
    report_uri: str | None
    report_as_of: date | None = None
    report_written: bool = False
    scores: dict[str, float] | None = None
    horizon: int = 1

    def row(self, computed_at: Any) -> dict[str, Any]:
        figures = asdict(self.performance)
        return {
            "ticker": self.ticker,
            "horizon": self.horizon,
            "as_of": self.as_of,
            "model_version": self.model_version,
            "evaluated": figures["evaluated"],
            "rolling_rmse": figures["rolling_rmse"],
            "rolling_naive_rmse": figures["rolling_naive_rmse"],
            "backtest_rmse": self.backtest_rmse,
            "rmse_ratio": figures["ratio"],
            "days_above": figures["days_above"],
            "coverage": figures["coverage"],
            "directional_accuracy": figures["directional_accuracy"],
            "mae": figures["mae"],
            "drift_share": self.drift_share,
            "drifted_features": json.dumps(self.drifted_features),
            "status": self.status,
            "reason": self.reason,
            "report_uri": self.report_uri,
            "report_as_of": self.report_as_of,
            "scores": json.dumps(self.scores, sort_keys=True) if self.scores else None,
            "computed_at": computed_at,
        }


def drift_rule(context: Context, horizon: int = 1) -> DriftRule:
    """The drift rule at a horizon. Forecasts h sessions ahead made on consecutive days share
    h - 1 of their daily moves, so one shock raises h consecutive errors: the run of days above
    the threshold that means drift is longer by h - 1 (at one session, as configured)."""
    settings = context.settings
    return DriftRule(
        window=settings.drift_window,
        threshold=settings.drift_threshold,
        days=settings.drift_days + horizon - 1,
    )


Key = tuple[str, int]  # (ticker, horizon)


@dataclass
class MonitorInputs:
    """What the step reads for its tickers, once for all of them."""

    bars: dict[str, pd.DataFrame]  # stored bars per ticker, oldest first
    features: dict[str, pd.DataFrame]  # complete feature rows per ticker, oldest first
    outcomes: dict[Key, pd.DataFrame]  # one scored forecast per day and horizon, oldest first
    champions: dict[Key, RegisteredVersion]
    versions: dict[Key, dict[str, RegisteredVersion]] = field(default_factory=dict)

    def backtest_rmse(self, key: Key, version: str) -> float:
        """The walk-forward RMSE a registered version promised (NaN when unknown)."""
        found = self.versions.get(key, {}).get(str(version))
        return found.metric("rmse") if found is not None else float("nan")


def _by_ticker(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each ticker's rows of a frame sorted by ticker (as the store returns it): contiguous
    slices, not copies."""
    if frame.empty:
        return {}
    names = frame["ticker"].to_numpy()
    cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(names)]
    if len(set(names[starts])) < len(starts):  # not grouped by ticker after all
        return {str(ticker): rows for ticker, rows in frame.groupby("ticker", sort=False)}
    return {str(names[start]): frame.iloc[start:end] for start, end in zip(starts, ends, strict=True)}


def read_inputs(context: Context, tickers: list[str]) -> MonitorInputs:
    """The bars, features, scored forecasts and registered versions of ``tickers`` at every
    configured horizon: one query each and a few registry searches. Features are computed by
    the same code as training's."""
    from stockcast.features.build import FEATURE_COLUMNS, build_features

    horizons = context.settings.horizons
    bars = context.store.load_prices(tickers)
    features = build_features(bars).dropna(subset=FEATURE_COLUMNS) if not bars.empty else bars
    evaluated = _by_ticker(context.store.evaluated_forecasts_of(tickers))
    outcomes = {
        (ticker, horizon): daily_outcomes(rows, horizon)
        for ticker, rows in evaluated.items()
        for horizon in horizons
    }
    registry = context.registry
    versions: dict[Key, dict[str, RegisteredVersion]] = {}
    for horizon in horizons:
        versions |= {
            (ticker, horizon): found for ticker, found in registry.versions_of(tickers, horizon).items()
        }
    champions = {
        key: versions[key][version]
        for key, version in registry.aliased_all(tickers, horizons).items()
        if version in versions.get(key, {})
    }
    return MonitorInputs(_by_ticker(bars), _by_ticker(features), outcomes, champions, versions)


def _live_scores(
    context: Context, outcomes: pd.DataFrame, bars: pd.DataFrame, horizon: int
) -> dict[str, float]:
    """Scale-free scores of the last drift window of scored forecasts (see ``scores.py``)."""
    from stockcast.monitoring.scores import live_scores

    window = context.settings.drift_window
    if len(outcomes) < window:
        return {}
    first_as_of = pd.Timestamp(outcomes["as_of"].iloc[-window])
    history = bars.loc[bars["date"] <= first_as_of, "close"].to_numpy(float)
    days = context.settings.train_window_days or len(history)
    return live_scores(outcomes, history[-days:], window, horizon)


def report_due(
    previous: dict[str, Any] | None, as_of: date, version: str | None, status: str, every: int
) -> str | None:
    """Why the Evidently reports should be written today, or None when the latest ones stand."""
    if previous is None or previous.get("report_as_of") is None or not previous.get("report_uri"):
        return "no report yet"
    last = previous["report_as_of"]
    if previous.get("model_version") != version:
        return "new champion"
    if last == as_of:
        return None
    if status in (WATCH, DRIFT) and previous.get("status") != status:
        return f"status is now {status}"
    # Weekdays after the report's day up to and including today.
    weekdays = int(np.busday_count(last + timedelta(days=1), as_of + timedelta(days=1)))
    if weekdays >= every:
        return f"{weekdays} weekdays since the last report"
    return None


def monitor_ticker(
    context: Context,
    ticker: str,
    reports: bool | None = None,
    html: bool = True,
    previous: dict[str, Any] | None = None,
    inputs: MonitorInputs | None = None,
    horizon: int = 1,
) -> TickerHealth | None:
    """Assess one ticker's champion at ``horizon`` as of its newest stored bar; None when it
    has no bars.

    The drift figures are computed every day. ``reports``: True writes the Evidently reports,
    False skips them, None writes them when due (see ``report_due``) and otherwise points to
    the latest ones of ``previous`` (the ticker's latest monitoring row). ``inputs``: what
    ``read_inputs`` read for the step's tickers (read for this ticker alone when None)."""
    if inputs is None:
        inputs = read_inputs(context, [ticker])
    settings = context.settings
    bars = inputs.bars.get(ticker)
    if bars is None or bars.empty:
        return None
    as_of = bars["date"].iloc[-1].date()
    key = (ticker, horizon)
    champion = inputs.champions.get(key)
    version = champion.version if champion else None
    backtest_rmse = champion.metric("rmse") if champion else None
    outcomes = inputs.outcomes.get(key)
    if outcomes is None:
        outcomes = daily_outcomes(_no_forecasts())
    promised = {served: inputs.backtest_rmse(key, served) for served in set(outcomes["model_version"])}
    performance = assess(outcomes, outcomes["model_version"].map(promised), drift_rule(context, horizon))
    scores = _live_scores(context, outcomes, bars, horizon)
    data_end = (
        date.fromisoformat(champion.tags["data_end"]) if champion and "data_end" in champion.tags else None
    )
    features = inputs.features.get(ticker, bars.iloc[0:0])
    reference, current = drift_windows(features, data_end, settings.drift_window, settings.reference_days)
    drift = feature_drift(reference, current)
    drift_share = drift.share if drift is not None else None
    drifted = drift.drifted if drift is not None else []

    if reports is None:
        due = report_due(previous, as_of, version, performance.status, settings.report_every_days)
        reports = due is not None
        if due:
            log.info("%s: writing reports (%s)", ticker, due)
    report_uri: str | None = None
    report_as_of: date | None = None
    written = None
    if reports:
        from stockcast.monitoring.reports import write_reports

        written = write_reports(
            context, ticker, as_of, reference, current, outcomes.tail(settings.drift_window), html=html
        )
        if written is not None:
            report_uri, report_as_of = written.uri, as_of
            if written.drifted_features != drifted:  # the same test: they must agree
                log.warning(
                    "%s: Evidently's report names drifted features %s, the daily figures %s",
                    ticker,
                    written.drifted_features,
                    drifted,
                )
    elif previous is not None and previous.get("report_uri"):
        report_uri, report_as_of = previous["report_uri"], previous.get("report_as_of")
    status, reason = performance.status, performance.reason
    if status in (OK, UNKNOWN) and drift_share is not None and drift_share >= settings.drift_share_watch:
        status = WATCH
        reason = f"{reason}; {drift_share:.0%} of features drifted ({', '.join(drifted)})"
    return TickerHealth(
        ticker=ticker,
        as_of=as_of,
        model_version=version,
        performance=performance,
        backtest_rmse=backtest_rmse,
        drift_share=drift_share,
        drifted_features=drifted,
        status=status,
        reason=reason,
        report_uri=report_uri,
        report_as_of=report_as_of,
        report_written=written is not None,
        scores=scores,
        horizon=horizon,
    )


def _no_forecasts() -> pd.DataFrame:
    from stockcast.store.database import FORECAST_COLUMNS

    return pd.DataFrame(columns=FORECAST_COLUMNS)


def monitor(
    context: Context, tickers: list[str], reports: bool | None = None, html: bool = True
) -> list[TickerHealth]:
    """Assess each ticker at each horizon, store the verdicts, push the gauges when a
    Pushgateway is set. ``reports`` as in ``monitor_ticker``, for the shortest horizon (the
    inputs whose drift the reports show are the same at every horizon; the daily figures are
    per horizon): None writes the Evidently reports where due (unless
    STOCKCAST_REPORTS_WHEN_DUE is false)."""
    if reports is None and not context.settings.reports_when_due:
        reports = False
    latest = context.store.load_monitoring(latest_only=True, horizon=None)
    previous = {(str(row["ticker"]), int(row["horizon"])): row for row in latest.to_dict("records")}
    inputs = read_inputs(context, tickers)
    horizons = context.settings.horizons
    healths = [
        health
        for ticker in tickers
        for horizon in horizons
        if (
            health := monitor_ticker(
                context,
                ticker,
                reports if horizon == horizons[0] else False,
                html,
                previous.get((ticker, horizon)),
                inputs,
                horizon,
            )
        )
    ]
    context.store.upsert_monitoring([health.row(context.now()) for health in healths])
    if context.settings.pushgateway_url and healths:
        from stockcast.monitoring.gauges import configured_only

        latest = context.store.load_monitoring(latest_only=True, horizon=None)
        push_gauges(context.settings.pushgateway_url, configured_only(latest, horizons))
    return healths


def drifted(context: Context, tickers: list[str]) -> dict[str, list[int]]:
    """The horizons whose latest verdict is drift, per ticker that has any (by ticker)."""
    latest = context.store.load_monitoring(latest_only=True, horizon=None)
    found = latest.loc[(latest["status"] == DRIFT) & latest["ticker"].isin(tickers)]
    horizons = context.settings.horizons
    by_ticker: dict[str, list[int]] = {}
    for row in found.sort_values(["ticker", "horizon"]).itertuples(index=False):
        if int(row.horizon) in horizons:
            by_ticker.setdefault(str(row.ticker), []).append(int(row.horizon))
    return by_ticker


def push_gauges(url: str, latest: pd.DataFrame) -> None:
    """Batch jobs end before Prometheus could scrape them: their gauges go to the Pushgateway."""
    from prometheus_client import CollectorRegistry, push_to_gateway

    from stockcast.monitoring.gauges import MonitoringCollector

    registry = CollectorRegistry()
    registry.register(MonitoringCollector(lambda: latest))
    try:
        push_to_gateway(url, job="stockcast-monitor", registry=registry, timeout=10)
    except OSError as error:
        log.warning("could not push monitoring gauges to %s: %s", url, error)


__all__ = [
    "DRIFT",
    "OK",
    "UNKNOWN",
    "WATCH",
    "MonitorInputs",
    "TickerHealth",
    "drifted",
    "monitor",
    "monitor_ticker",
    "read_inputs",
    "report_due",
]
