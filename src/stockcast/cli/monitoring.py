"""Monitoring commands: score forecasts (``actuals``), check each champion (``monitor``), say
it in words (``summary``), and replay months of production over history (``replay``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stockcast.cli.common import (
    TickersOption,
    console,
    guarded,
    load_context,
    print_error,
    reported_failures,
    setting_overrides,
)
from stockcast.cli.progress import progress
from stockcast.cli.render import print_actuals, print_health, print_replay
from stockcast.settings import load_settings


def actuals_command(tickers: TickersOption = None) -> None:
    """Score logged forecasts against the closes stored since (safe to rerun)."""
    from stockcast.monitoring.actuals import fill_actuals

    context = guarded(lambda: load_context(tickers))
    with reported_failures():
        report = fill_actuals(context, context.settings.tickers)
    print_actuals(report)


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

    context = guarded(load_context)
    tickers = [ticker.upper()] if ticker else context.settings.tickers
    with reported_failures():
        summaries = summarize(context, tickers, use_llm=llm)
    if as_json:
        console.print_json(data=[asdict(summary) for summary in summaries], default=str)
        return
    for summary in summaries:
        console.print(summary.text, highlight=False, soft_wrap=True)
        console.print()


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

    context = guarded(lambda: load_context(tickers))
    with reported_failures():
        healths = monitor(context, context.settings.tickers, reports=reports)
    print_health(healths)


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

    from stockcast.monitoring.replay import ReplayError, replay

    context = guarded(lambda: load_context(tickers))
    settings = context.settings
    if models is not None:
        settings = guarded(lambda: load_settings(**{**setting_overrides(tickers, None), "models": models}))
    try:
        first = date.fromisoformat(start)
    except ValueError:
        print_error(f"--start must be a date (YYYY-MM-DD), got {start!r}")
        raise typer.Exit(1) from None
    markers = ("<!-- replay:start -->", "<!-- replay:end -->")
    if readme:  # refused before the replay's minutes, not after
        from stockcast.training.evaluate import replace_readme_section

        guarded(lambda: replace_readme_section(readme.read_text(), "", *markers))
    directory = data_dir or settings.data_dir / "replay"
    with reported_failures(), progress(days) as step:
        try:
            report = replay(settings, first, days, directory, report_every=report_every, step=step)
        except ReplayError as error:
            print_error(f"{error}")
            raise typer.Exit(1) from None
    print_replay(report)
    if readme:
        from stockcast.monitoring.replay import summary_markdown
        from stockcast.training.evaluate import replace_readme_section

        command = f"stockcast replay --start {start} --days {days}" + (
            f" --models {models}" if models else ""
        )
        section = summary_markdown(report, settings, command)
        readme.write_text(replace_readme_section(readme.read_text(), section, *markers))
        console.print(f"README section replay replaced in {readme}", highlight=False)
