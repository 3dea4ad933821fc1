"""The promotion gate: beat naive and the champion on the same window, or stay a challenger."""

from __future__ import annotations

from stockcast.registry.promotion import Contender, should_promote

NAIVE = "naive()"
RIDGE = "ridge(alpha=10.0)"
FOREST = "random_forest(max_depth=5)"


def test_a_model_worse_than_naive_is_never_promoted_even_without_a_champion():
    decision = should_promote(Contender(RIDGE, 1.10), None, naive_rmse=1.00)
    assert not decision.promote
    assert "does not beat naive" in decision.reason


def test_naive_itself_may_become_the_first_champion():
    assert should_promote(Contender(NAIVE, 1.0), None, naive_rmse=1.0).promote


def test_a_better_model_replaces_the_champion():
    decision = should_promote(Contender(FOREST, 0.90), Contender(RIDGE, 0.95), naive_rmse=1.0)
    assert decision.promote
    assert "beats champion" in decision.reason


def test_margin_keeps_a_challenger_that_is_only_slightly_better():
    decision = should_promote(Contender(FOREST, 0.94), Contender(RIDGE, 0.95), naive_rmse=1.0, margin=0.02)
    assert not decision.promote
    assert "margin" in decision.reason


def test_a_challenger_that_beats_the_champion_but_not_naive_is_kept():
    decision = should_promote(Contender(FOREST, 1.02), Contender(RIDGE, 1.05), naive_rmse=1.0)
    assert not decision.promote


def test_naive_replaces_a_champion_that_lost_to_it():
    assert should_promote(Contender(NAIVE, 1.0), Contender(RIDGE, 1.05), naive_rmse=1.0).promote


def test_refit_of_the_champions_own_spec_is_accepted_while_it_beats_naive():
    assert should_promote(Contender(RIDGE, 0.95), Contender(RIDGE, 0.95), naive_rmse=1.0).promote
    assert not should_promote(Contender(RIDGE, 1.01), Contender(RIDGE, 1.01), naive_rmse=1.0).promote
