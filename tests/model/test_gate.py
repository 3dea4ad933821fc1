"""The gate on real walk-forward backtests: a known edge is promoted, noise is not."""

from __future__ import annotations

import pytest
from tests.series import autocorrelated_bars, labelled

from stockcast.registry.promotion import decide
from stockcast.training.backtest import BacktestConfig, backtest_candidates, common_window
from stockcast.training.models import default_spec

CONFIG = BacktestConfig(test_days=250, min_train_days=300, calibration_days=60, refit_every_days=50)
KINDS = ("naive", "drift", "ridge", "arima")


def gate_on(phi: float, seed: int):
    rows = labelled(autocorrelated_bars(1100, phi=phi, seed=seed))
    results = backtest_candidates(rows, [default_spec(kind) for kind in KINDS], CONFIG)
    return common_window(results), decide(common_window(results), champion=None)


def test_ar1_returns_with_a_known_coefficient_promote_a_model_that_learns_it():
    """Returns carry 0.3 of yesterday's: ARIMA and ridge can learn it; the gate promotes one
    of them with a Holm-adjusted DM-HLN p-value under alpha."""
    window, decision = gate_on(phi=0.3, seed=5)
    assert decision.promote
    assert decision.chosen in {default_spec("arima").key(), default_spec("ridge").key()}
    test, p_value = decision.evidence(versus_naive=True)
    assert test == "DM-HLN" and p_value is not None and p_value < 0.01
    assert window.rmse(decision.chosen) < 0.97 * window.naive_rmse


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_random_walk_keeps_naive_whatever_the_lowest_rmse(seed):
    """No autocorrelation: whichever candidate scores lowest by chance, naive serves."""
    _, decision = gate_on(phi=0.0, seed=seed)
    assert decision.chosen == default_spec("naive").key()
    assert decision.reason.endswith("naive serves")
