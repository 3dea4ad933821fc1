"""Training commands: ``train`` and ``retrain`` through the promotion gate, and ``evaluate``,
which backtests every candidate (or audits the gate) without touching the stores."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
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
from stockcast.cli.render import print_busy, print_failures, print_source_note, print_training


class WhenBusy(StrEnum):
    wait = "wait"
    skip = "skip"


WhenBusyOption = Annotated[
    WhenBusy,
    typer.Option(
        "--when-busy",
        help="A ticker another process is training: wait for it (STOCKCAST_TRAINING_LEASE_WAIT_SECONDS, "
        "then exit 1 naming it), or skip it with a warning (scheduled runs such as Airflow's).",
    ),
]


def train_command(
    tickers: TickersOption = None,
    force: Annotated[bool, typer.Option(help="Train even when the champion is current.")] = True,
    tune: Annotated[
        int,
        typer.Option(
            "--tune", min=0, help="Optuna trials per tunable candidate (0: default parameters only)."
        ),
    ] = 0,
    when_busy: WhenBusyOption = WhenBusy.wait,
) -> None:
    """Backtest every candidate, register the best and apply the promotion gate.

    A ticker another process is training is waited for (STOCKCAST_TRAINING_LEASE_WAIT_SECONDS),
    then named with its trainer and exit code 1; with --when-busy skip it is passed by."""
    from stockcast.pipeline import train_round

    context = guarded(lambda: load_context(tickers, activity="stockcast train"))
    names = context.settings.tickers
    with reported_failures(), progress(len(names) * len(context.settings.horizons)) as step:
        done = train_round(context, names, force=force, step=step, tune_trials=tune, busy=when_busy.value)
    _report_training(done, when_busy.value)


def retrain_command(
    tickers: Annotated[
        str | None, typer.Option("--tickers", "-t", help="Retrain these tickers, drifted or not.")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Retrain every configured ticker.")] = False,
    when_busy: WhenBusyOption = WhenBusy.wait,
) -> None:
    """Retrain drifted tickers (or the named ones, or --all) through the promotion gate."""
    from stockcast.pipeline import retrain_round, train_round

    context = guarded(lambda: load_context(tickers, activity="stockcast retrain"))
    names = context.settings.tickers
    busy: Any = when_busy.value
    with reported_failures():
        if tickers or everything:
            done = train_round(context, names, force=True, busy=busy)
        else:
            done = retrain_round(context, names, busy=busy)
    if not done.reports and not done.failures and not done.busy:
        console.print("nothing to retrain: no ticker has drifted (see `stockcast monitor`)")
    _report_training(done, busy)


def _report_training(done: Any, when_busy: str = "wait") -> None:
    """One line per trained ticker with the gate's verdict; failures on stderr, and one line
    per ticker another process was training: an error after the wait (exit 1), a warning when
    it was skipped on purpose."""
    print_training(done.reports)
    print_failures(done.failures)
    if when_busy == "skip":
        print_busy(done.busy)
    else:
        for ticker in sorted(done.busy):
            print_error(escape(done.busy[ticker]))
    if done.failures or (done.busy and when_busy != "skip"):
        raise typer.Exit(1)


def evaluate_command(
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
        guarded(lambda: replace_readme_section(readme.read_text(), ""))
    context = guarded(lambda: load_context(tickers, source))
    settings = context.settings
    names = settings.tickers
    start = date.fromisoformat(settings.start_date)
    end = date.fromisoformat(settings.end_date) if settings.end_date else context.now().date()
    with reported_failures():
        fetched = context.source.fetch(names, start, end)
        print_source_note(fetched.note)
        config = backtest_config(context)
        specs = [default_spec(kind) for kind in settings.models]
        with progress(len(names)) as step:
            rows = evaluate_candidates(
                fetched.bars, names, specs, config, settings.random_seed, step, settings.horizons
            )
    if rows.empty:  # say why: the tickers the source had no bars for, then what a backtest needs
        print_failures(fetched.failures)
        print_error(
            "no ticker had enough history for a backtest: each needs "
            f"{config.rows_needed} labelled days ({config.min_train_days} to train, "
            f"{config.calibration_days} to calibrate, {config.test_days} to score)"
        )
        raise typer.Exit(1)
    summary = summarize(rows)
    markdown = render_markdown(summary, rows, settings.source, config)
    _write_evaluation(markdown, rows, output, per_ticker, readme)
    print_failures(fetched.failures)


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
        guarded(lambda: replace_readme_section(readme.read_text(), "", start_marker, end_marker))
    context = guarded(lambda: load_context(tickers, source))
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
    with reported_failures():
        fetched = context.source.fetch(names, start, end)
        print_source_note(fetched.note)
        with progress(len(names) * len(settings.horizons)) as step:
            frame, skipped = audit_many(
                fetched.bars,
                names,
                specs,
                config,
                audit,
                settings.random_seed,
                workers or os.cpu_count() or 1,
                step,
                settings.horizons,
            )
    if frame.empty:
        print_failures(fetched.failures)
        for reason in skipped:
            errors.print(f"skipped {reason}", highlight=False, markup=False)
        print_error("no ticker had enough history for the audit")
        raise typer.Exit(1)
    markdown = render_audit(frame, settings.source, audit, len(specs), context.now().date().isoformat())
    if len(frame) <= 30 * len(settings.horizons):
        markdown += "\n" + render_per_ticker(frame)
    for reason in skipped:
        errors.print(f"skipped {reason}", highlight=False, markup=False)
    _write_evaluation(markdown, frame, output, per_ticker, readme, (start_marker, end_marker))
    print_failures(fetched.failures)


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
        readme.write_text(guarded(lambda: replace_readme_section(readme.read_text(), *section)))
