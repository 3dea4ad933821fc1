"""The HTTP API: champions and the feature store opened once in the lifespan, routes by
resource, one error shape, request ids, metrics and JSON access logs."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig

from stockcast.settings import Settings, load_settings

if TYPE_CHECKING:
    from stockcast.serving.state import ServingState

log = logging.getLogger(__name__)
# How long a first start (no snapshot) waits for its first forecasts before it is ready anyway.
FIRST_START_WAIT_SECONDS = 1.0
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"code": ERROR_CODES.get(status, "error"), "message": message, "details": details}
    return JSONResponse(body, status_code=status, headers=headers)


def _cause(error: BaseException | None) -> str:
    """What went wrong underneath, in one line (a database error's first line, not its SQL)."""
    if error is None:
        return ""
    lines = str(error).strip().splitlines()
    return f"; cause: {type(error).__name__}: {lines[0][:500] if lines else ''}"


def _log_server_error(request: Request, status: int, message: str, error: BaseException) -> None:
    """Every 5xx leaves its cause in the log, with the request id the client was given; an
    unexpected error (500) with its traceback."""
    request_id = request.scope.get("state", {}).get("request_id", "-")
    unexpected = status == 500
    cause = error if unexpected else error.__cause__ or error.__context__
    log.error(
        "%s %s answered %d (request id %s): %s%s",
        request.method,
        request.url.path,
        status,
        request_id,
        message,
        _cause(cause),
        exc_info=error if unexpected else None,
        extra={"fields": {"request_id": request_id, "status": status, "path": request.url.path}},
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code >= 500:
            _log_server_error(request, error.status_code, str(error.detail), error)
        return error_response(error.status_code, str(error.detail), headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # Starlette answers this outside the request middleware (no X-Request-ID header on the
        # answer), so the body carries the id to quote.
        _log_server_error(request, 500, "unexpected error", error)
        request_id = request.scope.get("state", {}).get("request_id")
        return error_response(
            500,
            f"internal error (request id {request_id}); the cause is in the server log",
            details={"request_id": request_id},
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"location": ".".join(str(part) for part in issue["loc"]), "problem": issue["msg"]}
            for issue in error.errors()
        ]
        summary = "; ".join(f"{problem['location']}: {problem['problem']}" for problem in problems)
        return error_response(422, f"invalid request: {summary}", details=problems)


def create_app(settings: Settings | None = None) -> FastAPI:
    from stockcast.serving.observability import (
        Metrics,
        RequestMiddleware,
        configure_access_log,
        flush_access_log,
    )
    from stockcast.serving.routes import health, jobs, models, monitoring, predict, predictions

    metrics = Metrics()
    config = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from stockcast.context import Context
        from stockcast.serving.forecast_log import ForecastLog
        from stockcast.serving.forecasts import ForecastCache
        from stockcast.serving.jobs import job_runner
        from stockcast.serving.ratelimit import RateLimiter
        from stockcast.serving.security import ApiKeys
        from stockcast.serving.state import ChampionCache, ServingState

        configure_access_log()  # again: a lifespan before this one may have flushed it
        context = Context(config, activity="the API")
        state = ServingState(
            context=context,
            champions=ChampionCache(context, config.tickers, metrics, config.horizons),
            metrics=metrics,
            keys=ApiKeys(key.get_secret_value() for key in config.api_keys),
            snapshot=config.data_dir / "serving" / "snapshot.pkl",
        )

        def store() -> Any:  # built on first use: a database away at start is a 503, not a crash
            return context.store

        metrics.watch_monitoring(store, config.horizons)
        state.forecasts = ForecastCache(state, config.feature_refresh_seconds)
        state.forecast_log = ForecastLog(store, observe=metrics.log_committed)
        state.jobs = job_runner(context, on_finished=state.champions.refresh)
        state.limiter = RateLimiter(config.rate_limit_per_minute)
        _open(state)
        state.start_refresher(config.champion_refresh_seconds)
        state.jobs.start()
        app.state.serving = state
        yield
        state.stop()
        flush_access_log()
        if "store" in vars(context):  # created (cached_property) only if it ever opened
            context.store.dispose()

    app = FastAPI(
        telemetry=_native_telemetry(),
        title="stockcast",
        summary="Next-trading-day close forecasts with prediction intervals.",
        version="0.1.0",
        lifespan=lifespan,
    )
    configure_access_log()
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(RequestMiddleware, metrics=metrics)
    _install_error_handlers(app)
    for module in (predict, health, predictions, models, monitoring, jobs):  # the busiest first
        # The routes themselves, not the router: an included router is matched through a layer
        # of its own on every request (a tenth of GET /predict's time, FastAPI 0.154).
        app.router.routes.extend(module.build_router().routes)
    _publish_limits(app, config.batch_max_tickers)
    return app


def _open(state: ServingState) -> None:
    """Open the store and what the first requests are served from: the last run's snapshot
    (ready at once, the rest behind), or the registry's champions and their first forecasts."""
    context = state.context
    try:
        context.store.ping()
    except Exception as error:
        # Not kept: readiness pings the store on every call and reports it while it is away.
        log.warning("the store is unreachable at start: %s", error)
    else:
        context.store.checkpoint_behind()  # SQLite: no checkpoint inside a commit requests wait for
        if state.restore_snapshot():
            # Ready now with the champions served before the restart; the registry check,
            # MLflow's import and the feature store's opening happen behind.
            state.start_background_warm_up()
        else:
            # Ready once the registry's champions are loaded and their first forecasts are
            # made, or FIRST_START_WAIT_SECONDS after that at most, the warm-up going on
            # behind (a request meanwhile opens the feature store itself). Ready before them,
            # the first requests had waited for the feature store to open: a stall of 0.4-0.8
            # s that the first 10 s of load all felt (p99 665 ms against 9 ms warm).
            state.champions.refresh()
            state.start_background_warm_up(refresh=False)
            if not state.wait_for_first_forecasts(FIRST_START_WAIT_SECONDS):
                log.info("ready before the first forecasts are made: they are made behind")


def _native_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry spans and metrics, on when OpenTelemetry is configured the
    standard way (an ``OTEL_*`` variable in the environment, as ``opentelemetry-instrument`` and
    the SDK's exporters read them) and off otherwise: switched on, FastAPI asks OpenTelemetry for
    its providers on every request, which read the environment each time (6% of
    GET /predict's time with nothing configured)."""
    if any(name.startswith("OTEL_") for name in os.environ):
        return TelemetryConfig()
    return TelemetryConfig(tracing=False, metrics=False, logs=False)


def _publish_limits(app: FastAPI, batch_max_tickers: int) -> None:
    """State the deployment's batch limit in the OpenAPI contract, so a client (or a fuzzer)
    that follows the schema is never refused for a list the schema allowed."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            tickers = generate()["components"]["schemas"]["BatchRequest"]["properties"]["tickers"]
            tickers["maxItems"] = batch_max_tickers  # generate() keeps what it returns
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
