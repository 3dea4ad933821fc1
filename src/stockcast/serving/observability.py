"""Prometheus metrics and one JSON log line per request, with a request id in and out."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockcast.serving.ids import new_id

REQUEST_ID_HEADER = "X-Request-ID"
access_log = logging.getLogger("stockcast.access")
SCRAPE_READ_SECONDS = 2.0  # how long a scrape waits for the store: well inside Prometheus' 10 s


class Metrics:
    """The API's metrics on a registry of their own, so each app instance counts alone."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stockcast_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stockcast_http_request_duration_seconds",
            "Request latency by route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.forecasts = Counter(
            "stockcast_forecasts_served_total",
            "Forecasts answered, by ticker, horizon (sessions ahead) and model version.",
            ["ticker", "horizon", "model_version", "origin"],
            registry=self.registry,
        )
        self.log_commit_seconds = Histogram(
            "stockcast_forecast_log_commit_seconds",
            "Time of each shared commit of served forecasts to the forecast log.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )
        self.log_commit_rows = Histogram(
            "stockcast_forecast_log_rows_per_commit",
            "Forecasts written by each shared commit of the forecast log.",
            buckets=(1, 3, 10, 30, 100, 300, 1000),
            registry=self.registry,
        )
        self.model_load_seconds = Histogram(
            "stockcast_model_load_seconds",
            "Time to load a champion from the registry.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.champion_version = Gauge(
            "stockcast_champion_version",
            "Registry version of the champion each ticker is served with at each horizon.",
            ["ticker", "horizon"],
            registry=self.registry,
        )
        self._monitoring: Any = None
        # Labelled children by label values: a dictionary read per request instead of
        # prometheus_client's label checks and lock.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*values))
        return child

    def forecast_served(self, ticker: str, horizon: int, version: str, origin: str) -> Any:
        return self._child(self.forecasts, ticker, str(horizon), version, origin)

    def log_committed(self, seconds: float, rows: int) -> None:
        self.log_commit_seconds.observe(seconds)
        self.log_commit_rows.observe(rows)

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.requests, method, route, str(status)).inc()
        self._child(self.latency, method, route).observe(seconds)

    def watch_monitoring(self, store: Callable[[], Any], horizons: Sequence[int] = (1,)) -> None:
        """Serve the monitoring table's latest verdicts at ``horizons`` (the configured ones) as
        gauges, read at each scrape from the store ``store()`` returns (a scrape while the store
        is away shows none). A horizon no longer configured keeps its rows but raises no alert."""
        if self._monitoring is not None:
            self.registry.unregister(self._monitoring)
        from stockcast.monitoring.gauges import MonitoringCollector, configured_only

        self._monitoring = MonitoringCollector(
            lambda: configured_only(store().load_monitoring(latest_only=True, horizon=None), horizons),
            lambda: store().last_forecast_times(),
            deadline_seconds=SCRAPE_READ_SECONDS,
        )
        self.registry.register(self._monitoring)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload |= getattr(record, "fields", {})
        return orjson.dumps(payload, default=str).decode()


class _AccessLines:
    """The access log's lines are formatted and written by a thread of their own, after the
    answer: a slow reader of the log (a full pipe) never holds up serving. ``stop`` writes what
    is queued."""

    def __init__(self) -> None:
        self.listener: QueueListener | None = None

    def start(self) -> None:
        if self.listener is not None:
            return
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        output = logging.StreamHandler()
        output.setFormatter(JsonFormatter())
        access_log.addHandler(_Queued(lines))
        self.listener = QueueListener(lines, output)
        self.listener.start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()


class _Queued(QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatted by the listener; an access record carries no arguments


_access_lines = _AccessLines()


def configure_access_log() -> None:
    if not any(isinstance(handler, _Queued) for handler in access_log.handlers):
        _access_lines.start()
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def flush_access_log() -> None:
    """Write every queued access line (at shutdown); the next ``configure_access_log`` starts
    writing again."""
    _access_lines.stop()
    for handler in [each for each in access_log.handlers if isinstance(each, _Queued)]:
        access_log.removeHandler(handler)
    _access_lines.listener = None


def _access_line(fields: dict[str, Any]) -> None:
    """One access line, made without a look up the stack for the caller (``Logger.info`` would
    take one per request)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.handle(
            access_log.makeRecord(
                access_log.name, logging.INFO, "", 0, "request", (), None, extra={"fields": fields}
            )
        )


class RequestMiddleware:
    """Pure ASGI middleware: request id in and out, metrics, one JSON access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            # The route template (``/predict/{ticker}``), keeping label sets small; routing
            # notes the route it chose in the scope.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.request_done(method, route, status, elapsed)
            _access_line(
                {
                    "method": method,
                    "path": scope.get("path", ""),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": request_id,
                }
            )
