"""An operator's ``models promote``: re-score the version, the champion and naive on today's
window, ask the gate, and move the alias only if it agrees (or when forced)."""

from __future__ import annotations

from stockcast.context import Context
from stockcast.lifecycle.train import backtest_config
from stockcast.modeling.gate import Decision
from stockcast.modeling.results import BacktestResult
from stockcast.modeling.specs import ModelSpec
from stockcast.registry.champion import apply_decision
from stockcast.registry.promotion import should_promote
from stockcast.store.leases import TrainingLease
from stockcast.training.backtest import common_window, run_backtests
from stockcast.training.models import default_spec


def _score_on_common_window(
    context: Context, ticker: str, specs: list[ModelSpec], horizon: int
) -> dict[str, BacktestResult]:
    from stockcast.features.build import for_horizon
    from stockcast.features.offline import historical_training_rows

    rows = historical_training_rows(context, [ticker]).get(ticker)
    if rows is None:
        raise LookupError(f"no features for {ticker}; run `stockcast features`")
    config = backtest_config(context, horizon)
    return run_backtests(for_horizon(rows, horizon), specs, config, context.settings.random_seed)


def promote(
    context: Context,
    ticker: str,
    version: str,
    force: bool = False,
    wait_seconds: float | None = None,
    horizon: int = 1,
) -> Decision:
    """Make ``version`` (of the ticker's model at ``horizon``) champion if the gate agrees on
    today's window (or when forced), holding the ticker's training lease throughout (waiting up
    to ``wait_seconds`` for a training of it, the setting when None)."""
    with context.leases.holding(ticker, wait_seconds) as lease:
        return _promote(context, ticker, version, force, lease, horizon)


def _promote(
    context: Context, ticker: str, version: str, force: bool, lease: TrainingLease, horizon: int
) -> Decision:
    from mlflow.exceptions import MlflowException

    registry = context.registry
    named = ticker if horizon == 1 else f"{ticker} at {horizon} sessions"
    if horizon not in context.settings.horizons:
        raise LookupError(
            f"horizon {horizon} is not configured (STOCKCAST_HORIZONS: {context.settings.horizons})"
        )
    try:
        challenger = registry.version(ticker, version, horizon)
    except MlflowException as error:
        raise LookupError(f"{named} has no registered version {version}") from error
    champion = registry.champion(ticker, horizon)
    if champion is not None and champion.version == challenger.version:
        return Decision(False, f"version {version} is already the champion of {named}")
    if force:
        replaced = f"v{champion.version}" if champion else "none"
        decision = Decision(True, f"forced by an operator over the gate (champion was {replaced})")
        apply_decision(
            context, ticker, challenger, champion, None, decision, "promote", lease=lease, forced=True
        )
        return decision
    specs = [default_spec("naive"), challenger.spec] + ([champion.spec] if champion else [])
    unique = list({spec.key(): spec for spec in specs}.values())
    results = _score_on_common_window(context, ticker, unique, horizon)
    window = common_window(results)
    settings = context.settings
    decision = should_promote(
        window,
        challenger.spec.key(),
        champion.spec.key() if champion else None,
        settings.promotion_alpha,
        settings.promotion_margin,
    )
    apply_decision(context, ticker, challenger, champion, window, decision, "promote", lease=lease)
    return decision
