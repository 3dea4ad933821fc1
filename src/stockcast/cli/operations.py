"""Running it in production: ``run`` (the whole daily cycle), ``flows`` (the same under
Prefect, now or on schedules) and ``db`` (the store's schema migrations)."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from stockcast.cli.common import (
    SourceOption,
    TickersOption,
    console,
    errors,
    guarded,
    load_context,
    print_error,
    reported_failures,
)
from stockcast.cli.progress import progress
from stockcast.cli.render import (
    print_actuals,
    print_busy,
    print_cycle,
    print_failures,
    print_health,
    print_refresh,
    print_retrained,
    print_source_note,
)
from stockcast.settings import load_settings

flows_app = typer.Typer(
    help="Prefect flows: run one now, or serve all on their schedules.", no_args_is_help=True
)
db_app = typer.Typer(
    help="The relational store's schema: migrate it, or show where it is.", no_args_is_help=True
)

FLOW_NAMES = ("daily", "train", "tune", "monitor")


def run_command(tickers: TickersOption = None, source: SourceOption = None) -> None:
    """Run one daily cycle: ingest, validate, features, train where needed, forecast; then
    score earlier forecasts, monitor, and retrain what drifted."""
    from stockcast.pipeline import run_cycle

    with reported_failures():
        context = load_context(tickers, source, activity="stockcast run")
        names = context.settings.tickers
        # Steps: ingest, features, a training per ticker and horizon, a forecast per ticker,
        # scoring, monitoring (retraining and the export add theirs when they happen).
        with progress(4 + (1 + len(context.settings.horizons)) * len(names)) as step:
            report = run_cycle(context, names, step=step)
    print_source_note(report.ingest.note if report.ingest else None)
    if report.features:
        print_refresh(context, report.features)
    print_cycle(context, report)
    if report.actuals is not None:
        print_actuals(report.actuals)
    if report.health:
        print_health(report.health)
    print_retrained(report.retrained)
    print_busy(report.busy)
    print_failures(report.failures)
    print_export(report.exported, report.export_problem)
    if not report.forecasts:
        print_error("no forecast was made")
        raise typer.Exit(1)
    if report.failures:
        raise typer.Exit(1)


@flows_app.command("run")
def flows_run(
    name: Annotated[str, typer.Argument(help="daily, train, tune or monitor.")],
    tickers: TickersOption = None,
) -> None:
    """Run one flow now, in this process (Prefect records it on its server when
    PREFECT_API_URL names one, else on a temporary local one)."""
    if name not in FLOW_NAMES:
        print_error(f"unknown flow {name!r}; choose one of {', '.join(FLOW_NAMES)}")
        raise typer.Exit(1)
    guarded(load_settings)
    from stockcast.orchestration.flows import FLOWS

    names = [ticker.strip().upper() for ticker in tickers.split(",") if ticker.strip()] if tickers else None
    with reported_failures():
        result = FLOWS[name](names)
    console.print_json(data=result, default=str)
    if isinstance(result, dict) and result.get("failures"):
        raise typer.Exit(1)


@flows_app.command("serve")
def flows_serve() -> None:
    """Serve the deployments on their schedules (STOCKCAST_DAILY_CRON, STOCKCAST_TUNE_CRON in
    STOCKCAST_SCHEDULE_TIMEZONE) until stopped; needs a Prefect server (PREFECT_API_URL)."""
    guarded(load_settings)
    from prefect import serve as serve_deployments

    from stockcast.orchestration.flows import deployments

    serve_deployments(*deployments())


@db_app.command("upgrade")
def db_upgrade(
    mlflow_too: Annotated[
        bool,
        typer.Option(
            "--mlflow/--no-mlflow",
            help="Also migrate MLflow's own database when MLFLOW_TRACKING_URI names one.",
        ),
    ] = True,
) -> None:
    """Apply the schema migrations to STOCKCAST_DATABASE_URL (a no-op when already current)."""
    from stockcast.store.database import Store

    settings = guarded(load_settings)
    store = Store(settings.resolved_database_url, settings.database_timeout_seconds)
    before, after = guarded(store.upgrade)
    where = _redacted(settings.resolved_database_url)
    if before == after:
        console.print(f"{where}: already at revision {after}", highlight=False)
    else:
        console.print(
            f"{where}: migrated from {before or 'an empty database'} to revision {after}", highlight=False
        )
    tracking = settings.resolved_tracking_uri
    if mlflow_too and tracking.split(":", 1)[0].split("+")[0] in {"sqlite", "postgresql", "mysql", "mssql"}:
        # MLflow's schema has its own migrations; its own command applies them.
        done = subprocess.run(  # noqa: S603 - our interpreter, MLflow's own command, a URI argument
            [sys.executable, "-m", "mlflow", "db", "upgrade", tracking],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            errors.print(
                f"[red]error:[/red] MLflow's database migration failed: {done.stderr.strip()[-500:]}"
            )
            raise typer.Exit(1)
        console.print(f"{_redacted(tracking)}: MLflow schema current", highlight=False)


@db_app.command("current")
def db_current() -> None:
    """The schema revision the database is at and the one this version needs."""
    from stockcast.store.database import Store, head_revision

    settings = guarded(load_settings)
    store = Store(settings.resolved_database_url, settings.database_timeout_seconds)
    guarded(store.ping)
    found, wanted = guarded(store.schema_revision), head_revision()
    state = "current" if found == wanted else "behind: run `stockcast db upgrade`"
    console.print(
        f"{_redacted(settings.resolved_database_url)}: revision {found or 'none'}, needs {wanted} ({state})",
        highlight=False,
    )
    if found != wanted:
        raise typer.Exit(1)


def _redacted(url: str) -> str:
    """A database URL fit for the console: the password replaced."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]


def sessions_command(
    tickers: TickersOption = None,
    on: Annotated[
        str | None,
        typer.Option("--date", help="YYYY-MM-DD (default: today at each ticker's exchange)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line (for schedulers' XCom).")] = False,
) -> None:
    """Which tickers' exchanges hold a session today (or on --date): schedulers skip the others
    on exchange holidays and weekends."""
    import json
    from datetime import UTC, date, datetime

    from stockcast.calendars import calendar_for, calendar_name_for, exchange_today

    settings = guarded(lambda: load_settings(**({"tickers": tickers} if tickers else {})))
    try:
        fixed = date.fromisoformat(on) if on else None
    except ValueError:
        print_error(f"--date: not a date in YYYY-MM-DD form: {on!r}")
        raise typer.Exit(2) from None
    now = datetime.now(UTC)
    days = {ticker: fixed or exchange_today(ticker, now) for ticker in settings.tickers}
    trading = []
    for ticker, day in days.items():
        calendar = calendar_for(ticker)
        if not calendar.first_session.date() <= day <= calendar.last_session.date():
            print_error(
                f"--date {day}: outside the {calendar.name} calendar "
                f"({calendar.first_session.date()} to {calendar.last_session.date()})"
            )
            raise typer.Exit(2)
        if calendar.is_session(day.isoformat()):
            trading.append(ticker)
    closed = [ticker for ticker in settings.tickers if ticker not in trading]
    if as_json:
        dates = sorted({day.isoformat() for day in days.values()})
        print(json.dumps({"dates": dates, "trading": trading, "closed": closed}))
        return
    for ticker, day in days.items():
        state = "a session" if ticker in trading else "no session"
        console.print(f"{ticker}: {state} on {day} ({calendar_name_for(ticker)})", highlight=False)


def print_export(exported: Any, problem: str | None) -> None:
    if exported is not None:
        console.print(
            f"ClickHouse: {exported.forecasts} forecast row(s) and {exported.monitoring} monitoring "
            "row(s) sent",
            highlight=False,
        )
    if problem is not None:
        errors.print(
            f"[bold yellow]warning:[/bold yellow] {escape(problem)}; nothing was lost: the store "
            "keeps everything, and the next export (`stockcast export clickhouse`) sends it",
            highlight=False,
            soft_wrap=True,
        )


export_app = typer.Typer(help="Copy the record elsewhere for analytics.", no_args_is_help=True)


@export_app.command("clickhouse")
def export_clickhouse(
    since: Annotated[
        str | None,
        typer.Option(
            help="Send everything logged, scored or monitored since this day (YYYY-MM-DD); "
            "default: since the newest row ClickHouse holds."
        ),
    ] = None,
    if_configured: Annotated[
        bool,
        typer.Option(
            "--if-configured", help="Without STOCKCAST_CLICKHOUSE_URL do nothing (exit 0): for schedulers."
        ),
    ] = False,
) -> None:
    """Send the forecast log, its outcomes and the monitoring rows to ClickHouse
    (STOCKCAST_CLICKHOUSE_URL); safe to rerun: ClickHouse keeps one row per forecast and day."""
    from datetime import UTC, date, datetime

    from stockcast.analytics.clickhouse import ClickHouseError, export

    try:
        start = datetime.combine(date.fromisoformat(since), datetime.min.time(), UTC) if since else None
    except ValueError:
        print_error(f"--since: not a date in YYYY-MM-DD form: {since!r}")
        raise typer.Exit(2) from None
    context = guarded(lambda: load_context(activity="stockcast export"))
    if context.settings.clickhouse_url is None:
        if if_configured:
            console.print("STOCKCAST_CLICKHOUSE_URL is not set: nothing to export", highlight=False)
            return
        print_error("STOCKCAST_CLICKHOUSE_URL is not set: there is no ClickHouse to export to")
        raise typer.Exit(2)
    try:
        with reported_failures():
            exported = export(context, since=start)
    except ClickHouseError as error:
        print_error(escape(str(error)))
        raise typer.Exit(1) from None
    print_export(exported, None)
