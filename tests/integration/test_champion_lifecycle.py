"""Promote, rollback and the promotion history, through the real registry and store."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.series import autocorrelated_bars, regime_flip_bars
from typer.testing import CliRunner

from stockcast.cli import app
from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.lifecycle.promote import promote
from stockcast.pipeline import train_many
from stockcast.registry.champion import rollback
from stockcast.settings import load_settings

FAST = {"backtest_days": 100, "min_train_days": 150, "refit_every_days": 50, "models": "naive,ridge"}


@pytest.fixture
def context(backend, make_bars, monkeypatch):
    monkeypatch.setenv("STOCKCAST_TICKERS", "AAA")
    for key, value in FAST.items():
        monkeypatch.setenv(f"STOCKCAST_{key.upper()}", value)
    context = Context(load_settings())
    context.store.upsert_prices(regime_flip_bars())
    refresh_feature_store(context)
    return context


def train_on(context: Context, bars: pd.DataFrame) -> str:
    context.store.upsert_prices(bars)
    refresh_feature_store(context)
    reports, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    return reports[0].version


def test_rollback_restores_the_previous_champion_and_is_recorded(context, make_bars):
    first = train_on(context, regime_flip_bars())  # naive wins the reversal window
    second = train_on(context, autocorrelated_bars(600, phi=0.6))  # ridge wins momentum
    assert context.registry.champion("AAA").version == second != first
    decision = rollback(context, "AAA")
    assert decision.promote and context.registry.champion("AAA").version == first
    history = context.store.load_decisions("AAA")
    assert list(history["action"]) == ["train", "train", "rollback"]
    with pytest.raises(LookupError, match="nothing to roll back"):
        rollback(context, "AAA")


def test_promote_runs_the_gate_on_todays_window_unless_forced(context, make_bars):
    momentum_version = train_on(context, autocorrelated_bars(600, phi=0.6))
    naive_version = train_on(context, regime_flip_bars())
    assert context.registry.champion("AAA").version == naive_version
    # On the reversal window the momentum model loses to naive: the gate refuses it.
    refused = promote(context, "AAA", momentum_version)
    assert not refused.promote and "naive" in refused.reason
    assert context.registry.champion("AAA").version == naive_version
    forced = promote(context, "AAA", momentum_version, force=True)
    assert forced.promote and context.registry.champion("AAA").version == momentum_version
    last = context.store.load_decisions("AAA").iloc[-1]
    assert bool(last["forced"]) and last["action"] == "promote"


def test_models_commands_show_history_and_champions(context, make_bars):
    train_on(context, regime_flip_bars())
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "AAA" in listed.output and "naive" in listed.output
    history = runner.invoke(app, ["models", "history", "AAA"])
    assert history.exit_code == 0 and "train" in history.output and "promoted" in history.output
    missing = runner.invoke(app, ["models", "promote", "AAA", "99"])
    assert missing.exit_code == 1 and "no registered version 99" in missing.output
