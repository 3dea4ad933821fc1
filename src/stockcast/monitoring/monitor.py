"""`stockcast monitor`: per ticker, how its champion is doing in production and whether its
inputs still look like what it was trained on. One row per ticker and day goes to the
``monitoring`` table; the Evidently reports go to the artifact store."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stockcast.monitoring.actuals import daily_outcomes
from stockcast.monitoring.drift import DRIFT, OK, UNKNOWN, WATCH, DriftRule, Performance, assess

if TYPE_CHECKING:
    from stockcast.context import Context

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

    def row(self, computed_at: Any) -> dict[str, Any]:
        figures = asdict(self.performance)
        return {
            "ticker": self.ticker,
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


def drift_rule(context: Context) -> DriftRule:
    settings = context.settings
    return DriftRule(
        window=settings.drift_window, threshold=settings.drift_threshold, days=settings.drift_days
    )


def feature_windows(
    context: Context, ticker: str, as_of: date, data_end: date | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current) feature rows: the last ``drift_window`` sessions up to ``as_of``
    against the ``reference_days`` sessions the champion learned from (up to its data end, and
    never overlapping the current window). Computed by the same code as training features."""
    from stockcast.features.build import FEATURE_COLUMNS, build_features

    settings = context.settings
    bars = context.store.load_prices([ticker], end=as_of)
    features = build_features(bars).dropna(subset=FEATURE_COLUMNS)
    current = features.tail(settings.drift_window)
    if current.empty:
        return features.iloc[0:0], current
    before = features.loc[features["date"] < current["date"].iloc[0]]
    if data_end is not None:
        before = before.loc[before["date"] <= pd.Timestamp(data_end)]
    return before.tail(settings.reference_days), current


def _backtest_rmse(context: Context, ticker: str, version: str) -> float:
    """The walk-forward RMSE a registered version promised (NaN when unknown)."""
    try:
        return context.registry.version(ticker, str(version)).metric("rmse")
    except Exception:
        return float("nan")


def _live_scores(context: Context, ticker: str, outcomes: pd.DataFrame) -> dict[str, float]:
    """Scale-free scores of the last drift window of scored forecasts (see ``scores.py``)."""
    from stockcast.monitoring.scores import live_scores

    window = context.settings.drift_window
    if len(outcomes) < window:
        return {}
    first_as_of = pd.Timestamp(outcomes["as_of"].iloc[-window]).date()
    history = context.store.load_prices([ticker], end=first_as_of)["close"].to_numpy(float)
    days = context.settings.train_window_days or len(history)
    return live_scores(outcomes, history[-days:], window)


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
) -> TickerHealth | None:
    """Assess one ticker as of its newest stored bar; None when it has no bars.

    ``reports``: True writes the Evidently reports, False skips them, None writes them when
    due (see ``report_due``) and otherwise carries the drift figures of ``previous`` (the
    ticker's latest monitoring row)."""
    store = context.store
    as_of = store.latest_price_date(ticker)
    if as_of is None:
        return None
    champion = context.registry.champion(ticker)
    version = champion.version if champion else None
    backtest_rmse = champion.metric("rmse") if champion else None
    outcomes = daily_outcomes(store.evaluated_forecasts(ticker))
    promised = {served: _backtest_rmse(context, ticker, served) for served in set(outcomes["model_version"])}
    performance = assess(outcomes, outcomes["model_version"].map(promised), drift_rule(context))
    scores = _live_scores(context, ticker, outcomes)
    data_end = (
        date.fromisoformat(champion.tags["data_end"]) if champion and "data_end" in champion.tags else None
    )
    if reports is None:
        due = report_due(previous, as_of, version, performance.status, context.settings.report_every_days)
        reports = due is not None
        if due:
            log.info("%s: writing reports (%s)", ticker, due)

    drift_share: float | None = None
    drifted: list[str] = []
    report_uri: str | None = None
    report_as_of: date | None = None
    written = None
    if reports:
        from stockcast.monitoring.reports import write_reports

        reference, current = feature_windows(context, ticker, as_of, data_end)
        written = write_reports(
            context,
            ticker,
            as_of,
            reference,
            current,
            outcomes.tail(context.settings.drift_window),
            html=html,
        )
        if written is not None:
            drift_share, drifted, report_uri = written.drift_share, written.drifted_features, written.uri
            report_as_of = as_of
    elif previous is not None and previous.get("report_uri"):
        carried_share = previous.get("drift_share")
        drift_share = None if carried_share is None or pd.isna(carried_share) else float(carried_share)
        drifted = json.loads(previous.get("drifted_features") or "[]")
        report_uri, report_as_of = previous["report_uri"], previous.get("report_as_of")
    status, reason = performance.status, performance.reason
    if (
        status in (OK, UNKNOWN)
        and drift_share is not None
        and drift_share >= context.settings.drift_share_watch
    ):
        status = WATCH
        seen = "" if report_as_of == as_of else f" in the report of {report_as_of}"
        reason = f"{reason}; {drift_share:.0%} of features drifted{seen} ({', '.join(drifted)})"
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
    )


def monitor(
    context: Context, tickers: list[str], reports: bool | None = None, html: bool = True
) -> list[TickerHealth]:
    """Assess each ticker, store the verdicts, push the gauges when a Pushgateway is set.
    ``reports`` as in ``monitor_ticker``: None writes the Evidently reports where due (unless
    STOCKCAST_REPORTS_WHEN_DUE is false)."""
    if reports is None and not context.settings.reports_when_due:
        reports = False
    latest = context.store.load_monitoring(latest_only=True)
    previous = {str(row["ticker"]): row for row in latest.to_dict("records")}
    healths = [
        health
        for ticker in tickers
        if (health := monitor_ticker(context, ticker, reports, html, previous.get(ticker)))
    ]
    context.store.upsert_monitoring([health.row(context.now()) for health in healths])
    if context.settings.pushgateway_url and healths:
        push_gauges(context.settings.pushgateway_url, context.store.load_monitoring(latest_only=True))
    return healths


def drifted(context: Context, tickers: list[str]) -> list[str]:
    latest = context.store.load_monitoring(latest_only=True)
    return sorted(latest.loc[(latest["status"] == DRIFT) & latest["ticker"].isin(tickers), "ticker"])


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
    "TickerHealth",
    "drifted",
    "monitor",
    "monitor_ticker",
    "report_due",
]
