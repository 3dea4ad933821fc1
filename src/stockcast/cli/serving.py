"""Serving commands: ``predict`` from the online features, the HTTP API (``serve``) and the web
dashboard (``dashboard``)."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stockcast.cli.common import TickersOption, guarded, load_context, print_error, reported_failures
from stockcast.cli.render import print_cycle, print_failures
from stockcast.settings import load_settings

if TYPE_CHECKING:
    from stockcast.settings import Settings


def predict_command(tickers: TickersOption = None) -> None:
    """Forecast the next session's close per ticker from its online features and log it."""
    from stockcast.pipeline import CycleReport, forecast_many

    context = guarded(lambda: load_context(tickers))
    names = context.settings.tickers
    with reported_failures():
        forecasts, failures, logged = forecast_many(context, names)

    print_cycle(context, CycleReport(forecasts=forecasts, forecasts_logged=logged))
    print_failures(failures)
    if failures:
        raise typer.Exit(1)


def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default STOCKCAST_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default STOCKCAST_PORT, 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default STOCKCAST_WORKERS, 1).")
    ] = None,
) -> None:
    """Start the HTTP API (FastAPI under uvicorn); OpenAPI at /docs."""
    import uvicorn

    settings: Settings = guarded(load_settings)
    uvicorn.run(
        "stockcast.serving.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level="warning",
        access_log=False,  # stockcast writes its own JSON line per request
    )


def dashboard_command(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default STOCKCAST_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8501,
) -> None:
    """Start the web dashboard (Streamlit): forecasts, history, models and monitoring."""
    from importlib.resources import files

    settings: Settings = guarded(load_settings)
    script = str(files("stockcast.dashboard").joinpath("app.py"))
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        script,
        f"--server.address={host or settings.host}",
        f"--server.port={port}",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
    ]
    raise typer.Exit(run_forwarding_signals(command))


def run_forwarding_signals(command: list[str], grace_seconds: float = 10.0) -> int:
    """Run ``command`` as a child and wait for it; SIGTERM and SIGINT sent to this process are
    passed on, so stopping the command stops what it started (a child still running
    ``grace_seconds`` later is killed). Returns the child's exit code, 128 + N when signal N
    ended it, as a shell reports it."""
    import signal
    import threading

    child: subprocess.Popen[bytes] | None = None
    asked: list[int] = []  # signals received, in order
    deadline: list[threading.Timer] = []

    def forward(signum: int, _frame: Any) -> None:
        asked.append(signum)
        if child is not None:
            child.send_signal(signum)  # nothing when it has already ended
            if not deadline:
                deadline.append(threading.Timer(grace_seconds, child.kill))
                deadline[0].daemon = True
                deadline[0].start()

    previous = {each: signal.signal(each, forward) for each in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(command)  # noqa: S603 - our interpreter and our script
        if asked:  # a stop that came while the child was starting
            forward(asked.pop(), None)
        code = child.wait()
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
        for timer in deadline:
            timer.cancel()
    return code if code >= 0 else 128 - code


def worker_command(
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Jobs trained at once (Celery child processes).")
    ] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
    name: Annotated[
        str | None, typer.Option(help="The worker's node name (default stockcast@<host>).")
    ] = None,
) -> None:
    """Train the API's jobs from the Celery broker (STOCKCAST_CELERY_BROKER_URL); stops on
    SIGTERM once the job in hand is done."""
    settings: Settings = guarded(load_settings)
    if settings.celery_broker_url is None:
        print_error(
            "STOCKCAST_CELERY_BROKER_URL is not set: without a broker the API trains its jobs "
            "itself and no worker is needed (set it to a Redis URL, e.g. redis://127.0.0.1:6379/1)"
        )
        raise typer.Exit(2)
    from stockcast.jobs.broker import run_worker

    logging.getLogger("stockcast").setLevel(logging.INFO)
    run_worker(settings, concurrency, loglevel, name)
