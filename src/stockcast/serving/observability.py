"""Prometheus metrics and one JSON log line per request, with a request id in and out."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        return json.dumps(payload, default=str)


def configure_access_log() -> None:
    if not any(isinstance(handler.formatter, JsonFormatter) for handler in access_log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


ROUTE_KEY = "stockcast.route"


async def record_route(request: Request) -> None:
    """An app-wide dependency: notes this request's route template (``/predict/{ticker}``) in
    the holder the middleware put into the scope, keeping metric label sets small."""
    route = request.scope.get("route")
    holder = request.scope.get(ROUTE_KEY)
    if holder is not None:
        holder["template"] = getattr(route, "path", "unmatched")


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
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        holder: dict[str, str] = {}
        scope[ROUTE_KEY] = holder
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
            route = holder.get("template", "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "method": method,
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "request_id": request_id,
                    }
                },
            )
