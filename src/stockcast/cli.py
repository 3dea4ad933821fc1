"""The ``stockcast`` command line. Commands assemble adapters from settings and call stages."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from stockcast.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from stockcast.context import Context
    from stockcast.features.offline import FeatureRefresh
    from stockcast.pipeline import CycleReport

app = typer.Typer(
    help="Next-trading-day close forecasts for a list of tickers, with the lifecycle around them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="The registry: champions, promotion history, promote and rollback.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
flows_app = typer.Typer(
    help="Prefect flows: run one now, or serve all on their schedules.", no_args_is_help=True
)
app.add_typer(flows_app, name="flows")
db_app = typer.Typer(
    help="The relational store's schema: migrate it, or show where it is.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

# Piped output gets a wide table instead of rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
T = TypeVar("T")

TickersOption = Annotated[
    str | None,
    typer.Option("--tickers", "-t", help="Comma-separated tickers (default: STOCKCAST_TICKERS)."),
]
SourceOption = Annotated[
    str | None,
    typer.Option("--source", help="auto, yahoo, sample or file:<path or URL> (default: STOCKCAST_SOURCE)."),
]


class CommandError(RuntimeError):
    """A failure to report in one line and exit non-zero."""


def _expected_errors() -> tuple[type[BaseException], ...]:
    from stockcast.artifacts import ArtifactStoreUnavailableError
    from stockcast.ingest.bars import InvalidBatchError
    from stockcast.ingest.sources import SourceUnavailableError
    from stockcast.store.database import StoreUnavailableError

    # LookupError: a stage found nothing to work on (no prices, no features); its message
    # says which command to run first.
    return (
        CommandError,
        SettingsError,
        StoreUnavailableError,
        ArtifactStoreUnavailableError,
        SourceUnavailableError,
        InvalidBatchError,
        LookupError,
    )


def _quiet_libraries() -> None:
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "yfinance", "peewee"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Libraries' deprecation notices (ibis, evidently) are for their developers, not our users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


@contextmanager
def _reported_failures() -> Iterator[None]:
    try:
        yield
    except _expected_errors() as error:
        errors.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None


def _overrides(tickers: str | None, source: str | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if tickers is not None:
        overrides["tickers"] = tickers
    if source is not None:
        overrides["source"] = source
    return overrides


def _context(tickers: str | None = None, source: str | None = None) -> Context:
    from stockcast.context import Context

    return Context(load_settings(**_overrides(tickers, source)))


def _guarded(action: Callable[[], T]) -> T:
    with _reported_failures():
        return action()


def _print_failures(failures: dict[str, str]) -> None:
    for ticker, reason in sorted(failures.items()):
        errors.print(f"[red]failed[/red] {ticker}: {reason}", highlight=False)


def _print_source_note(note: str | None) -> None:
    if note:
        errors.print(f"[bold yellow]warning:[/bold yellow] {note}", highlight=False)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[str], None]]:
    """A live bar on a terminal; in a log (cron, CI, a container) one line per tenth of the
    work with the elapsed time, so that a 500-ticker run shows where it is."""
    if not errors.is_terminal:
        yield _logged_progress(total)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=total)

        def step(description: str) -> None:
            progress.update(task, advance=1, description=description)

        yield step


def _logged_progress(total: int) -> Callable[[str], None]:
    import time

    started = time.monotonic()
    done = 0
    every = max(1, total // 10)

    def step(description: str) -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == total:
            errors.print(
                f"progress {done}/{total} ({done / max(total, 1):.0%}) {description}, "
                f"{time.monotonic() - started:.0f} s",
                highlight=False,
            )

    return step


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    _quiet_libraries()
    if verbose:
        logging.getLogger("stockcast").setLevel(logging.INFO)


@app.command()
def run(tickers: TickersOption = None, source: SourceOption = None) -> None:
    """Run one daily cycle: ingest, validate, features, train where needed, forecast; then
    score earlier forecasts, monitor, and retrain what drifted."""
    from stockcast.pipeline import run_cycle

    with _reported_failures():
        context = _context(tickers, source)
        names = context.settings.tickers
        with _progress(4 + 2 * len(names)) as step:
            report = run_cycle(context, names, step=step)
    _print_source_note(report.ingest.note if report.ingest else None)
    if report.features:
        _print_refresh(context, report.features)
    _print_cycle(context, report)
    if report.actuals is not None:
        _print_actuals(report.actuals)
    if report.health:
        _print_health(report.health)
    for retrained in report.retrained:
        verdict = "promoted" if retrained.decision.promote else "kept the champion"
        console.print(
            f"{retrained.ticker}: drifted, retrained v{retrained.version}: {verdict} — {retrained.decision.reason}",
            highlight=False,
        )
    _print_failures(report.failures)
    if not report.forecasts:
        errors.print("[red]error:[/red] no forecast was made", highlight=False)
        raise typer.Exit(1)
    if report.failures:
        raise typer.Exit(1)


def _print_cycle(context: Context, report: CycleReport) -> None:
    for trained in report.trained:
        verdict = "promoted" if trained.decision.promote else "kept champion"
        console.print(
            f"{trained.ticker}: trained v{trained.version} {trained.spec_key}: {verdict} — {trained.decision.reason}",
            highlight=False,
        )
    table = Table(title="Next-session close forecasts")
    for column in (
        "ticker",
        "as of",
        "last close",
        "target date",
        "forecast",
        "interval",
        "model",
        "version",
        "RMSE",
        "naive RMSE",
        "skill",
        "coverage",
    ):
        table.add_column(column, justify="left" if column in {"ticker", "model"} else "right")
    for forecast in report.forecasts:
        champion = context.registry.champion(forecast.ticker)
        metric = champion.metric if champion else (lambda _key: float("nan"))
        table.add_row(
            forecast.ticker,
            forecast.as_of.isoformat(),
            f"{forecast.last_close:.2f}",
            forecast.target_date.isoformat(),
            f"{forecast.predicted_close:.2f}",
            f"{forecast.lower:.2f} – {forecast.upper:.2f} ({forecast.level:.0%})",
            forecast.model_kind,
            forecast.model_version,
            f"{metric('rmse'):.3f}",
            f"{metric('naive_rmse'):.3f}",
            f"{metric('skill_vs_naive'):+.3f}",
            f"{metric('coverage'):.1%}",
        )
    console.print(table)
    console.print(
        "RMSE, skill (1 - RMSE/naive RMSE) and interval coverage are the champion's walk-forward "
        "backtest figures on its last scored window.",
        highlight=False,
    )
    console.print(
        f"{report.forecasts_logged} new forecast(s) logged; prices in {context.settings.resolved_database_url}"
    )


@app.command("ingest")
def ingest_command(tickers: TickersOption = None, source: SourceOption = None) -> None:
    """Fetch daily bars, validate each ticker's batch and upsert it into the prices table."""
    from stockcast.ingest.ingest import ingest

    context = _guarded(lambda: _context(tickers, source))
    report = _guarded(lambda: ingest(context, context.settings.tickers))
    _print_source_note(report.note)
    for ticker, rows in sorted(report.rows_written.items()):
        console.print(f"{ticker}: {rows} bars stored (source {report.source})", highlight=False)
    if report.raw_batch:
        console.print(f"raw batch kept at {report.raw_batch}", highlight=False)
    _print_failures(report.failures)
    if report.failures:
        raise typer.Exit(1)


@app.command("features")
def features_command() -> None:
    """Rebuild the offline feature table, apply the Feast repository and materialize the new
    days into the online store."""
    from stockcast.features.offline import refresh_feature_store

    context = _guarded(_context)
    refreshed = _guarded(lambda: refresh_feature_store(context))
    _print_refresh(context, refreshed)


def _print_refresh(context: Context, refreshed: FeatureRefresh) -> None:
    materialized = refreshed.materialized
    if materialized.rows == 0:
        what = "online store already current"
    else:
        kind = "first load" if materialized.first_load else "incremental"
        what = f"materialized {materialized.rows} row(s) up to {materialized.end:%Y-%m-%d %H:%M} UTC ({kind})"
    console.print(
        f"features: {refreshed.rows} rows for {refreshed.tickers} ticker(s) at {refreshed.table_url}; {what}; "
        f"feature repository {context.feature_store.repo_dir}",
        highlight=False,
    )


@app.command("train")
def train_command(
    tickers: TickersOption = None,
    force: Annotated[bool, typer.Option(help="Train even when the champion is current.")] = True,
    tune: Annotated[
        int,
        typer.Option(
            "--tune", min=0, help="Optuna trials per tunable candidate (0: default parameters only)."
        ),
    ] = 0,
) -> None:
    """Backtest every candidate, register the best and apply the promotion gate."""
    from stockcast.pipeline import train_many

    context = _guarded(lambda: _context(tickers))
    names = context.settings.tickers
    with _reported_failures(), _progress(len(names)) as step:
        reports, failures = train_many(context, names, force=force, step=step, tune_trials=tune)
    _report_training(reports, failures)


def _report_training(reports: list[Any], failures: dict[str, str]) -> None:
    """One line per trained ticker with the gate's verdict; failures on stderr, exit 1."""
    for report in reports:
        verdict = "promoted to champion" if report.decision.promote else "kept as challenger"
        console.print(
            f"{report.ticker}: v{report.version} {report.spec_key} {verdict}: {report.decision.reason}",
            highlight=False,
        )
    _print_failures(failures)
    if failures:
        raise typer.Exit(1)


@app.command("predict")
def predict_command(tickers: TickersOption = None) -> None:
    """Forecast the next session's close per ticker from its online features and log it."""
    from stockcast.pipeline import CycleReport, forecast_many

    context = _guarded(lambda: _context(tickers))
    names = context.settings.tickers
    with _reported_failures():
        forecasts, failures, logged = forecast_many(context, names)

    _print_cycle(context, CycleReport(forecasts=forecasts, forecasts_logged=logged))
    _print_failures(failures)
    if failures:
        raise typer.Exit(1)


@app.command()
def evaluate(
    tickers: TickersOption = None,
    source: SourceOption = None,
    output: Annotated[Path | None, typer.Option(help="Write the summary as markdown here.")] = None,
    readme: Annotated[
        Path | None, typer.Option(help="Replace the README's forecast-quality section with the summary.")
    ] = None,
    per_ticker: Annotated[
        Path | None, typer.Option(help="Write every (ticker, candidate) row as CSV here.")
    ] = None,
    gate_audit: Annotated[
        bool,
        typer.Option(
            "--gate-audit",
            help="Audit the promotion gate instead: pick on one window, score the pick on the next, "
            "beside the old lowest-RMSE rule; with the Model Confidence Set per ticker.",
        ),
    ] = False,
    section: Annotated[
        str,
        typer.Option(help="With --readme: the README section to replace (its <!-- NAME:start --> marker)."),
    ] = "",
    workers: Annotated[
        int, typer.Option(min=0, help="Processes for the audit's backtests; 0: one per core.")
    ] = 0,
) -> None:
    """Backtest every candidate on each ticker and compare it with the naive forecast.

    Reads bars from the source and writes nothing to the stores or the registry."""
    from datetime import date

    if gate_audit:
        _gate_audit(tickers, source, output, readme, per_ticker, section or "gate-audit", workers)
        return

    from stockcast.lifecycle.train import backtest_config
    from stockcast.training.evaluate import (
        evaluate_candidates,
        render_markdown,
        replace_readme_section,
        summarize,
    )
    from stockcast.training.models import default_spec

    if readme:  # refused before minutes of backtests, not after
        _guarded(lambda: replace_readme_section(readme.read_text(), ""))
    context = _guarded(lambda: _context(tickers, source))
    settings = context.settings
    names = settings.tickers
    start = date.fromisoformat(settings.start_date)
    end = date.fromisoformat(settings.end_date) if settings.end_date else context.now().date()
    with _reported_failures():
        fetched = context.source.fetch(names, start, end)
        _print_source_note(fetched.note)
        config = backtest_config(context)
        specs = [default_spec(kind) for kind in settings.models]
        with _progress(len(names)) as step:
            rows = evaluate_candidates(fetched.bars, names, specs, config, settings.random_seed, step)
    if rows.empty:  # say why: the tickers the source had no bars for, then what a backtest needs
        _print_failures(fetched.failures)
        errors.print(
            "[red]error:[/red] no ticker had enough history for a backtest: each needs "
            f"{config.rows_needed} labelled days ({config.min_train_days} to train, "
            f"{config.calibration_days} to calibrate, {config.test_days} to score)",
            highlight=False,
        )
        raise typer.Exit(1)
    summary = summarize(rows)
    markdown = render_markdown(summary, rows, settings.source, config)
    _write_evaluation(markdown, rows, output, per_ticker, readme)
    _print_failures(fetched.failures)


def _gate_audit(
    tickers: str | None,
    source: str | None,
    output: Path | None,
    readme: Path | None,
    per_ticker: Path | None,
    section: str,
    workers: int,
) -> None:
    import os
    from datetime import date

    from stockcast.lifecycle.audit import AuditConfig, audit_many, render_audit, render_per_ticker
    from stockcast.lifecycle.train import backtest_config
    from stockcast.training.evaluate import replace_readme_section
    from stockcast.training.models import default_spec

    start_marker, end_marker = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    if readme:  # refused before minutes of backtests, not after
        _guarded(lambda: replace_readme_section(readme.read_text(), "", start_marker, end_marker))
    context = _guarded(lambda: _context(tickers, source))
    settings = context.settings
    names = settings.tickers
    start = date.fromisoformat(settings.start_date)
    end = date.fromisoformat(settings.end_date) if settings.end_date else context.now().date()
    audit = AuditConfig(
        gate_days=settings.backtest_days,
        next_days=settings.backtest_days,
        review_every_days=settings.retrain_after_days,
        alpha=settings.promotion_alpha,
        margin=settings.promotion_margin,
    )
    specs = [default_spec(kind) for kind in settings.models]
    config = backtest_config(context)
    with _reported_failures():
        fetched = context.source.fetch(names, start, end)
        _print_source_note(fetched.note)
        with _progress(len(names)) as step:
            frame, skipped = audit_many(
                fetched.bars,
                names,
                specs,
                config,
                audit,
                settings.random_seed,
                workers or os.cpu_count() or 1,
                step,
            )
    if frame.empty:
        _print_failures(fetched.failures)
        for reason in skipped:
            errors.print(f"skipped {reason}", highlight=False, markup=False)
        errors.print("[red]error:[/red] no ticker had enough history for the audit", highlight=False)
        raise typer.Exit(1)
    markdown = render_audit(frame, settings.source, audit, len(specs), context.now().date().isoformat())
    if len(frame) <= 30:
        markdown += "\n" + render_per_ticker(frame)
    for reason in skipped:
        errors.print(f"skipped {reason}", highlight=False, markup=False)
    _write_evaluation(markdown, frame, output, per_ticker, readme, (start_marker, end_marker))
    _print_failures(fetched.failures)


def _write_evaluation(
    markdown: str,
    rows: Any,
    output: Path | None,
    per_ticker: Path | None,
    readme: Path | None,
    markers: tuple[str, str] | None = None,
) -> None:
    """Print an evaluation's page and write it where asked: a file, a CSV of its rows, and the
    README's section between ``markers`` (the forecast-quality ones by default)."""
    from stockcast.training.evaluate import replace_readme_section

    console.print(markdown, highlight=False, markup=False)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown)
    if per_ticker:
        per_ticker.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(per_ticker, index=False)
    if readme:
        section = (markdown, *markers) if markers else (markdown,)
        readme.write_text(_guarded(lambda: replace_readme_section(readme.read_text(), *section)))


@app.command("actuals")
def actuals_command(tickers: TickersOption = None) -> None:
    """Score logged forecasts against the closes stored since (safe to rerun)."""
    from stockcast.monitoring.actuals import fill_actuals

    context = _guarded(lambda: _context(tickers))
    with _reported_failures():
        report = fill_actuals(context, context.settings.tickers)
    _print_actuals(report)


def _print_actuals(report: Any) -> None:
    per_ticker = ", ".join(f"{ticker} {count}" for ticker, count in sorted(report.by_ticker.items()))
    console.print(
        f"{report.filled} forecast(s) scored{f' ({per_ticker})' if per_ticker else ''}; "
        f"{report.still_open} still waiting for their session"
        + (
            f"; {report.mapped_to_next_session} scored on the next session after a holiday"
            if report.mapped_to_next_session
            else ""
        ),
        highlight=False,
    )


@app.command("summary")
def summary_command(
    ticker: Annotated[
        str | None, typer.Argument(help="One ticker (default: every configured ticker).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The texts with the facts they were written from.")
    ] = False,
    llm: Annotated[
        bool | None,
        typer.Option(
            "--llm/--no-llm",
            help="Let the configured language model rewrite the text (default: when STOCKCAST_SUMMARY_LLM_* are set).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """A short text per ticker: the latest forecast and interval, the model against the naive
    forecast, monitoring status and what changed, and whether to trust it today."""
    from dataclasses import asdict

    from stockcast.summary import summarize

    context = _guarded(_context)
    tickers = [ticker.upper()] if ticker else context.settings.tickers
    with _reported_failures():
        summaries = summarize(context, tickers, use_llm=llm)
    if as_json:
        console.print_json(data=[asdict(summary) for summary in summaries], default=str)
        return
    for summary in summaries:
        console.print(summary.text, highlight=False, soft_wrap=True)
        console.print()


@app.command("monitor")
def monitor_command(
    tickers: TickersOption = None,
    reports: Annotated[
        bool | None,
        typer.Option(
            help="Write the Evidently reports (drift, performance) for every ticker now, or never; "
            "by default where due (none yet, new champion, status worse, or STOCKCAST_REPORT_EVERY_DAYS).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Rolling error against the backtest, coverage, direction and data drift per ticker."""
    from stockcast.monitoring.monitor import monitor

    context = _guarded(lambda: _context(tickers))
    with _reported_failures():
        healths = monitor(context, context.settings.tickers, reports=reports)
    _print_health(healths)


def _print_health(healths: list[Any]) -> None:
    colours = {"ok": "green", "watch": "yellow", "drift": "red", "unknown": "dim"}
    table = Table(title="Monitoring")
    for column in (
        "ticker",
        "as of",
        "status",
        "version",
        "scored",
        "rolling RMSE",
        "backtest RMSE",
        "ratio",
        "days above",
        "coverage",
        "direction",
        "drifted features",
    ):
        table.add_column(
            column,
            justify="left" if column in {"ticker", "status", "drifted features"} else "right",
            overflow="fold",
        )
    for health in healths:
        figures = health.performance
        table.add_row(
            health.ticker,
            health.as_of.isoformat(),
            f"[{colours.get(health.status, 'white')}]{health.status}[/]",
            health.model_version or "-",
            str(figures.evaluated),
            _figure(figures.rolling_rmse),
            _figure(health.backtest_rmse),
            _figure(figures.ratio, "{:.2f}x"),
            str(figures.days_above),
            _figure(figures.coverage, "{:.0%}"),
            _figure(figures.directional_accuracy, "{:.0%}"),
            "-"
            if health.drift_share is None
            else f"{health.drift_share:.0%} ({len(health.drifted_features)})",
        )
    console.print(table)
    written = [health for health in healths if health.report_written]
    if written:
        folder = _short_path(written[0].report_uri or "").replace(f"/{written[0].ticker}/", "/{ticker}/")
        console.print(
            f"Evidently reports (HTML and JSON) written for {len(written)} ticker(s): {folder}",
            highlight=False,
        )
    carried = len([health for health in healths if health.report_uri and not health.report_written])
    if carried:
        console.print(
            f"{carried} ticker(s) keep the drift figures of their latest report (not due yet)",
            highlight=False,
        )
    for health in healths:
        if health.status != "ok":
            console.print(f"{health.ticker}: {health.status}: {health.reason}", highlight=False)
        if health.drifted_features:
            console.print(
                f"{health.ticker}: drifted features: {', '.join(health.drifted_features)}", highlight=False
            )


def _short_path(uri: str | None) -> str:
    if not uri:
        return "-"
    try:
        return str(Path(uri).relative_to(Path.cwd()))
    except ValueError:
        return uri


@app.command("retrain")
def retrain_command(
    tickers: Annotated[
        str | None, typer.Option("--tickers", "-t", help="Retrain these tickers, drifted or not.")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Retrain every configured ticker.")] = False,
) -> None:
    """Retrain drifted tickers (or the named ones, or --all) through the promotion gate."""
    from stockcast.pipeline import retrain_drifted, train_many

    context = _guarded(lambda: _context(tickers))
    names = context.settings.tickers
    with _reported_failures():
        if tickers or everything:
            reports, failures = train_many(context, names, force=True)
        else:
            reports, failures = retrain_drifted(context, names)
    if not reports and not failures:
        console.print("nothing to retrain: no ticker has drifted (see `stockcast monitor`)")
    _report_training(reports, failures)


@app.command("replay")
def replay_command(
    start: Annotated[str, typer.Option(help="First simulated session (YYYY-MM-DD).")],
    days: Annotated[int, typer.Option(min=1, help="Trading days to simulate.")] = 250,
    tickers: TickersOption = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the replay keeps its stores (default: <data dir>/replay).")
    ] = None,
    report_every: Annotated[
        int, typer.Option(min=1, help="Evidently reports when due, at least every N simulated weekdays.")
    ] = 20,
    models: Annotated[
        str | None, typer.Option(help="Candidate models, comma-separated (default: STOCKCAST_MODELS).")
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(help="Replace this README's replay section (<!-- replay:start -->) with the results."),
    ] = None,
) -> None:
    """Simulate N trading days of production over historical bars, through `run`'s code."""
    from datetime import date

    from stockcast.monitoring.replay import REPLAY_COLUMNS, ReplayError, replay, summary_rows

    context = _guarded(lambda: _context(tickers))
    settings = context.settings
    if models is not None:
        settings = _guarded(lambda: load_settings(**{**_overrides(tickers, None), "models": models}))
    try:
        first = date.fromisoformat(start)
    except ValueError:
        errors.print(f"[red]error:[/red] --start must be a date (YYYY-MM-DD), got {start!r}", highlight=False)
        raise typer.Exit(1) from None
    markers = ("<!-- replay:start -->", "<!-- replay:end -->")
    if readme:  # refused before the replay's minutes, not after
        from stockcast.training.evaluate import replace_readme_section

        _guarded(lambda: replace_readme_section(readme.read_text(), "", *markers))
    directory = data_dir or settings.data_dir / "replay"
    with _reported_failures(), _progress(days) as step:
        try:
            report = replay(settings, first, days, directory, report_every=report_every, step=step)
        except ReplayError as error:
            errors.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None
    table = Table(
        title=f"Replay {report.start} – {report.end}: {report.sessions} sessions in {report.seconds:.0f} s"
    )
    for column in REPLAY_COLUMNS:
        table.add_column(column, justify="left" if column in {"ticker", "first drift"} else "right")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    for decision in report.decisions:
        verdict = "promoted" if decision["promoted"] else "kept"
        console.print(
            f"{str(decision['decided_at'])[:10]} {decision['ticker']}: {decision['trigger']} retraining, {verdict}: {decision['reason']}",
            highlight=False,
        )
    console.print(f"plot: {report.plot}; summary: {report.directory / 'summary.json'}", highlight=False)
    if readme:
        from stockcast.monitoring.replay import summary_markdown
        from stockcast.training.evaluate import replace_readme_section

        command = f"stockcast replay --start {start} --days {days}" + (
            f" --models {models}" if models else ""
        )
        section = summary_markdown(report, settings, command)
        readme.write_text(replace_readme_section(readme.read_text(), section, *markers))
        console.print(f"README section replay replaced in {readme}", highlight=False)


@app.command()
def serve(
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

    settings: Settings = _guarded(load_settings)
    uvicorn.run(
        "stockcast.serving.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level="warning",
        access_log=False,  # stockcast writes its own JSON line per request
    )


def _run_forwarding_signals(command: list[str], grace_seconds: float = 10.0) -> int:
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


@app.command()
def dashboard(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default STOCKCAST_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8501,
) -> None:
    """Start the web dashboard (Streamlit): forecasts, history, models and monitoring."""
    from importlib.resources import files

    settings: Settings = _guarded(load_settings)
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
    raise typer.Exit(_run_forwarding_signals(command))


def _promoted_at(decisions: Any, ticker: str, version: str) -> str:
    made = decisions[
        (decisions["ticker"] == ticker)
        & decisions["promoted"].astype(bool)
        & (decisions["challenger_version"] == version)
    ]
    return "?" if made.empty else f"{made['decided_at'].iloc[-1]:%Y-%m-%d %H:%M}"


@models_app.command("list")
def models_list(tickers: TickersOption = None) -> None:
    """Champion per ticker: kind, backtest RMSE against naive, skill, interval coverage, promoted at."""
    context = _guarded(lambda: _context(tickers))
    table = Table(title="Champions")
    for column in (
        "ticker",
        "version",
        "kind",
        "RMSE",
        "naive RMSE",
        "skill",
        "coverage",
        "data end",
        "promoted at",
    ):
        table.add_column(column)
    missing = []
    with _reported_failures():
        champions = {ticker: context.registry.champion(ticker) for ticker in context.settings.tickers}
        decisions = context.store.load_decisions()
    for ticker, champion in champions.items():
        if champion is None:
            missing.append(ticker)
            continue
        table.add_row(
            ticker,
            champion.version,
            champion.kind,
            f"{champion.metric('rmse'):.3f}",
            f"{champion.metric('naive_rmse'):.3f}",
            f"{champion.metric('skill_vs_naive'):+.3f}",
            f"{champion.metric('coverage'):.1%}",
            champion.tags.get("data_end", "?"),
            _promoted_at(decisions, ticker, champion.version),
        )
    console.print(table)
    if missing:
        errors.print(f"no champion yet for {', '.join(missing)}; run `stockcast train`", highlight=False)


def _redacted(url: str) -> str:
    """A database URL fit for the console: the password replaced."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]


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

    settings = _guarded(load_settings)
    store = Store(settings.resolved_database_url, settings.database_timeout_seconds)
    before, after = _guarded(store.upgrade)
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

    settings = _guarded(load_settings)
    store = Store(settings.resolved_database_url, settings.database_timeout_seconds)
    _guarded(store.ping)
    found, wanted = _guarded(store.schema_revision), head_revision()
    state = "current" if found == wanted else "behind: run `stockcast db upgrade`"
    console.print(
        f"{_redacted(settings.resolved_database_url)}: revision {found or 'none'}, needs {wanted} ({state})",
        highlight=False,
    )
    if found != wanted:
        raise typer.Exit(1)


@models_app.command("history")
def models_history(ticker: Annotated[str, typer.Argument(help="Ticker symbol.")]) -> None:
    """Every promotion decision for a ticker: when, which versions, their scores, and why."""
    context = _guarded(_context)
    symbol = ticker.upper()
    decisions = _guarded(lambda: context.store.load_decisions(symbol))
    if decisions.empty:
        errors.print(f"no decisions recorded for {symbol}; run `stockcast train`", highlight=False)
        raise typer.Exit(1)
    table = Table(title=f"Promotion history of {symbol}")
    for column in (
        "decided at",
        "action",
        "result",
        "challenger",
        "RMSE",
        "champion",
        "RMSE ",
        "naive RMSE",
        "p vs naive",
        "p vs champion",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for row in decisions.itertuples(index=False):
        result = ("promoted" if row.promoted else "kept") + (" (forced)" if row.forced else "")
        table.add_row(
            f"{row.decided_at:%Y-%m-%d %H:%M}",
            row.action,
            result,
            f"v{row.challenger_version} {row.challenger_spec or ''}".strip(),
            _figure(row.challenger_rmse),
            f"v{row.champion_version} {row.champion_spec or ''}".strip() if row.champion_version else "-",
            _figure(row.champion_rmse),
            _figure(row.naive_rmse),
            _evidence(row.test_vs_naive, row.p_value_vs_naive),
            _evidence(row.test_vs_champion, row.p_value_vs_champion),
            row.reason,
        )
    console.print(table)
    console.print(
        "p: the one-sided test (DM-HLN) the gate used for the registered version against naive and "
        "against the champion, Holm-adjusted when it was picked among several candidates.",
        style="dim",
        highlight=False,
    )


def _evidence(test: str | None, p_value: float | None) -> str:
    if test is None or p_value is None or (isinstance(p_value, float) and math.isnan(p_value)):
        return "-"
    return f"{p_value:.3f} ({test})" if p_value >= 0.001 else f"{p_value:.1e} ({test})"


def _figure(value: float | None, form: str = "{:.4f}") -> str:
    return "-" if value is None or math.isnan(value) else form.format(value)


@models_app.command("promote")
def models_promote(
    ticker: Annotated[str, typer.Argument(help="Ticker symbol.")],
    version: Annotated[str, typer.Argument(help="Registered version to promote.")],
    force: Annotated[bool, typer.Option(help="Skip the gate; recorded as forced.")] = False,
) -> None:
    """Make a version champion if it beats the champion and naive on today's window."""
    from stockcast.lifecycle.promote import promote

    context = _guarded(_context)
    decision = _guarded(lambda: promote(context, ticker.upper(), version, force=force))
    verdict = "promoted" if decision.promote else "not promoted"
    console.print(f"{ticker.upper()} v{version}: {verdict}: {decision.reason}", highlight=False)
    if not decision.promote:
        raise typer.Exit(1)


@models_app.command("rollback")
def models_rollback(ticker: Annotated[str, typer.Argument(help="Ticker symbol.")]) -> None:
    """Put back the champion the current one replaced."""
    from stockcast.registry.champion import rollback

    context = _guarded(_context)
    decision = _guarded(lambda: rollback(context, ticker.upper()))
    console.print(f"{ticker.upper()}: {decision.reason}", highlight=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


FLOW_NAMES = ("daily", "train", "tune", "monitor")


@flows_app.command("run")
def flows_run(
    name: Annotated[str, typer.Argument(help="daily, train, tune or monitor.")],
    tickers: TickersOption = None,
) -> None:
    """Run one flow now, in this process (Prefect records it on its server when
    PREFECT_API_URL names one, else on a temporary local one)."""
    if name not in FLOW_NAMES:
        errors.print(
            f"[red]error:[/red] unknown flow {name!r}; choose one of {', '.join(FLOW_NAMES)}", highlight=False
        )
        raise typer.Exit(1)
    _guarded(load_settings)
    from stockcast.orchestration.flows import FLOWS

    names = [ticker.strip().upper() for ticker in tickers.split(",") if ticker.strip()] if tickers else None
    with _reported_failures():
        result = FLOWS[name](names)
    console.print_json(data=result, default=str)
    if isinstance(result, dict) and result.get("failures"):
        raise typer.Exit(1)


@flows_app.command("serve")
def flows_serve() -> None:
    """Serve the deployments on their schedules (STOCKCAST_DAILY_CRON, STOCKCAST_TUNE_CRON in
    STOCKCAST_SCHEDULE_TIMEZONE) until stopped; needs a Prefect server (PREFECT_API_URL)."""
    _guarded(load_settings)
    from prefect import serve as serve_deployments

    from stockcast.orchestration.flows import deployments

    serve_deployments(*deployments())
