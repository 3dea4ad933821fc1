"""The ``stockcast`` application: its commands in the order ``--help`` lists them, the
``--verbose`` switch, and ``main``, the console script's entry point."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Annotated

import typer

from stockcast.cli import data, monitoring, operations, serving, training
from stockcast.cli.common import errors
from stockcast.cli.models import models_app

app = typer.Typer(
    help="Next-trading-day close forecasts for a list of tickers, with the lifecycle around them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(operations.run_command)
app.command("ingest")(data.ingest_command)
app.command("features")(data.features_command)
app.command("train")(training.train_command)
app.command("predict")(serving.predict_command)
app.command("evaluate")(training.evaluate_command)
app.command("actuals")(monitoring.actuals_command)
app.command("summary")(monitoring.summary_command)
app.command("monitor")(monitoring.monitor_command)
app.command("retrain")(training.retrain_command)
app.command("replay")(monitoring.replay_command)
app.command("serve")(serving.serve_command)
app.command("dashboard")(serving.dashboard_command)
app.command("worker")(serving.worker_command)
app.command("sessions")(operations.sessions_command)
app.add_typer(models_app, name="models")
app.add_typer(operations.flows_app, name="flows")
app.add_typer(operations.db_app, name="db")
app.add_typer(operations.export_app, name="export")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    _quiet_libraries()
    if verbose:
        logging.getLogger("stockcast").setLevel(logging.INFO)


def _quiet_libraries() -> None:
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "yfinance", "peewee"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Libraries' deprecation notices (ibis, evidently) are for their developers, not our users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
