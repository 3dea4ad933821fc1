"""Monitoring figures as Prometheus gauges, read from the store when scraped (the API's
/metrics) or once before a push (batch jobs to the Pushgateway)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pandas as pd
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
STATUS_CODES = {"unknown": -1.0, "ok": 0.0, "watch": 1.0, "drift": 2.0}
FIGURES = {
    "rmse_ratio": (
        "stockcast_monitor_rmse_ratio",
        "Rolling RMSE of scored forecasts / the champion's backtest RMSE.",
    ),
    "rolling_rmse": ("stockcast_monitor_rolling_rmse", "RMSE of the last scored forecasts (price units)."),
    "rolling_naive_rmse": (
        "stockcast_monitor_rolling_naive_rmse",
        "RMSE of the naive forecast over the same days.",
    ),
    "coverage": (
        "stockcast_monitor_interval_coverage",
        "Share of recent actuals inside the forecast interval.",
    ),
    "directional_accuracy": (
        "stockcast_monitor_directional_accuracy",
        "Share of recent forecasts with the right direction.",
    ),
    "drift_share": ("stockcast_monitor_drifted_feature_share", "Share of features drifted (Evidently)."),
}


def configured_only(latest: pd.DataFrame, horizons: Sequence[int]) -> pd.DataFrame:
    """The verdicts of the configured horizons: a horizon dropped from STOCKCAST_HORIZONS keeps
    its stored rows, but its last verdict would otherwise be exported (and alerted on) forever."""
    if latest.empty or "horizon" not in latest:
        return latest
    return latest.loc[latest["horizon"].isin(list(horizons))]


class MonitoringCollector(Collector):
    """With ``deadline_seconds`` (the API's /metrics), the store is read on a thread of its own
    and a scrape waits at most that long: a database that is away (the store retries a refused
    connection for STOCKCAST_DATABASE_TIMEOUT_SECONDS) must not make the scrape time out, which
    Prometheus would report as the API being down rather than as the store. One read at a time:
    a scrape during a slow read waits on that read instead of starting another."""

    def __init__(
        self,
        latest: Callable[[], pd.DataFrame],
        last_forecasts: Callable[[], dict[str, Any]] | None = None,
        deadline_seconds: float | None = None,
    ):
        self.latest = latest
        self.last_forecasts = last_forecasts
        self.deadline_seconds = deadline_seconds
        self._lock = threading.Lock()
        self._pending: Future[tuple[pd.DataFrame, dict[str, Any] | None]] | None = None

    def _read(self) -> tuple[pd.DataFrame, dict[str, Any] | None]:
        latest = self.latest()
        return latest, self.last_forecasts() if self.last_forecasts is not None else None

    def _read_within_deadline(self) -> tuple[pd.DataFrame, dict[str, Any] | None]:
        if self.deadline_seconds is None:
            return self._read()
        with self._lock:
            if self._pending is None or self._pending.done():
                pending: Future[tuple[pd.DataFrame, dict[str, Any] | None]] = Future()

                def read() -> None:
                    try:
                        pending.set_result(self._read())
                    except BaseException as error:  # handed to the scrape that waits on it
                        pending.set_exception(error)

                self._pending = pending
                threading.Thread(target=read, name="monitoring-gauges", daemon=True).start()
            pending = self._pending
        try:
            return pending.result(timeout=self.deadline_seconds)
        except FutureTimeout:
            raise TimeoutError(f"the store did not answer within {self.deadline_seconds:g} s") from None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readable = GaugeMetricFamily(
            "stockcast_monitor_store_up",
            "1 when the monitoring figures could be read from the store, 0 when not (the other "
            "monitoring gauges are then missing, and so would their alerts be).",
        )
        try:
            latest, last_forecasts = self._read_within_deadline()
            readable.add_metric([], 1.0)
        except Exception as error:  # a scrape must not fail because the store is briefly away
            log.warning("monitoring gauges unavailable: %s", error)
            latest, last_forecasts = pd.DataFrame(), None
            readable.add_metric([], 0.0)
        yield readable
        # Per ticker and horizon (sessions ahead); rows from before horizons are one session ahead.
        labels = ["ticker", "horizon"]
        status = GaugeMetricFamily(
            "stockcast_monitor_status", "Drift status: -1 unknown, 0 ok, 1 watch, 2 drift.", labels=labels
        )
        families = {
            column: GaugeMetricFamily(name, text, labels=labels) for column, (name, text) in FIGURES.items()
        }
        for row in latest.to_dict(orient="records"):
            horizon = row.get("horizon")
            values = [
                row["ticker"],
                str(int(horizon)) if horizon is not None and not pd.isna(horizon) else "1",
            ]
            status.add_metric(values, STATUS_CODES.get(row["status"], -1.0))
            for column, family in families.items():
                value = row.get(column)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    family.add_metric(values, float(value))
        yield status
        yield from families.values()
        if last_forecasts is not None:
            stamps = GaugeMetricFamily(
                "stockcast_last_forecast_timestamp_seconds",
                "When the newest forecast of each ticker was logged (Unix time).",
                labels=["ticker"],
            )
            for ticker, stamp in last_forecasts.items():
                stamps.add_metric([ticker], pd.Timestamp(stamp).timestamp())
            yield stamps
