"""``stockcast models``: the registry's champions, their promotion history, promote and
rollback."""

from __future__ import annotations

from typing import Annotated

import typer

from stockcast.cli.common import (
    TickersOption,
    console,
    errors,
    guarded,
    load_context,
    reported_failures,
)
from stockcast.cli.render import print_champions, print_history

HorizonOption = Annotated[
    int | None,
    typer.Option(
        "--horizon",
        min=1,
        max=60,
        help="Sessions ahead: which of the ticker's models (default: the shortest configured).",
    ),
]

models_app = typer.Typer(
    help="The registry: champions, promotion history, promote and rollback.", no_args_is_help=True
)


@models_app.command("list")
def models_list(tickers: TickersOption = None) -> None:
    """Champion per ticker and horizon: kind, backtest RMSE against naive, skill, interval
    coverage, promoted at."""
    context = guarded(lambda: load_context(tickers))
    with reported_failures():
        champions = {
            (ticker, horizon): context.registry.champion(ticker, horizon)
            for ticker in context.settings.tickers
            for horizon in context.settings.horizons
        }
        decisions = context.store.load_decisions(horizon=None)
    print_champions(champions, decisions)


@models_app.command("history")
def models_history(
    ticker: Annotated[str, typer.Argument(help="Ticker symbol.")], horizon: HorizonOption = None
) -> None:
    """Every promotion decision for a ticker's model at a horizon: when, which versions, their
    scores, and why."""
    context = guarded(load_context)
    symbol = ticker.upper()
    ahead = horizon or context.settings.horizons[0]
    named = symbol if ahead == 1 else f"{symbol} at {ahead} sessions"
    decisions = guarded(lambda: context.store.load_decisions(symbol, ahead))
    if decisions.empty:
        errors.print(f"no decisions recorded for {named}; run `stockcast train`", highlight=False)
        raise typer.Exit(1)
    print_history(named, decisions)


@models_app.command("promote")
def models_promote(
    ticker: Annotated[str, typer.Argument(help="Ticker symbol.")],
    version: Annotated[str, typer.Argument(help="Registered version to promote.")],
    force: Annotated[bool, typer.Option(help="Skip the gate; recorded as forced.")] = False,
    horizon: HorizonOption = None,
) -> None:
    """Make a version champion if it beats the champion and naive on today's window (at the
    version's horizon).

    Waits for a training of the ticker in progress (STOCKCAST_TRAINING_LEASE_WAIT_SECONDS)."""
    from stockcast.lifecycle.promote import promote

    context = guarded(lambda: load_context(activity="stockcast models promote"))
    ahead = horizon or context.settings.horizons[0]
    decision = guarded(lambda: promote(context, ticker.upper(), version, force=force, horizon=ahead))
    verdict = "promoted" if decision.promote else "not promoted"
    console.print(f"{ticker.upper()} v{version}: {verdict}: {decision.reason}", highlight=False)
    if not decision.promote:
        raise typer.Exit(1)


@models_app.command("rollback")
def models_rollback(
    ticker: Annotated[str, typer.Argument(help="Ticker symbol.")], horizon: HorizonOption = None
) -> None:
    """Put back the champion the current one (at the horizon) replaced.

    Waits for a training of the ticker in progress (STOCKCAST_TRAINING_LEASE_WAIT_SECONDS)."""
    from stockcast.registry.champion import rollback

    context = guarded(lambda: load_context(activity="stockcast models rollback"))
    ahead = horizon or context.settings.horizons[0]
    decision = guarded(lambda: rollback(context, ticker.upper(), horizon=ahead))
    console.print(f"{ticker.upper()}: {decision.reason}", highlight=False)
