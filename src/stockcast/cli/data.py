"""Data commands: ``ingest`` stores validated bars, ``features`` refreshes the feature store."""

from __future__ import annotations

from typing import Annotated

import typer

from stockcast.cli.common import SourceOption, TickersOption, console, guarded, load_context
from stockcast.cli.render import print_failures, print_refresh, print_source_note


def ingest_command(
    tickers: TickersOption = None,
    source: SourceOption = None,
    partial_ok: Annotated[
        bool,
        typer.Option(
            "--partial-ok",
            help="Exit 0 when at least one ticker was stored (the others are warnings), as "
            "`stockcast run` carries on with the tickers it has; exit 1 only when none was.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="End with one JSON line: the tickers stored and the failures."),
    ] = False,
) -> None:
    """Fetch daily bars, validate each ticker's batch and upsert it into the prices table."""
    import json

    from stockcast.ingest.ingest import ingest

    context = guarded(lambda: load_context(tickers, source))
    report = guarded(lambda: ingest(context, context.settings.tickers))
    print_source_note(report.note)
    for ticker, rows in sorted(report.rows_written.items()):
        console.print(f"{ticker}: {rows} bars stored (source {report.source})", highlight=False)
    if report.raw_batch:
        console.print(f"raw batch kept at {report.raw_batch}", highlight=False)
    print_failures(report.failures)
    stored = [ticker for ticker in context.settings.tickers if ticker not in report.failures]
    if as_json:
        print(json.dumps({"stored": stored, "failures": report.failures}))
    if report.failures and not (partial_ok and stored):
        raise typer.Exit(1)


def features_command() -> None:
    """Rebuild the offline feature table, apply the Feast repository and materialize the new
    days into the online store."""
    from stockcast.features.offline import refresh_feature_store

    context = guarded(load_context)
    refreshed = guarded(lambda: refresh_feature_store(context))
    print_refresh(context, refreshed)
