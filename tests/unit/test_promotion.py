"""The promotion gate: a model serves only when a test says it beats naive (and the champion)."""

from __future__ import annotations

import numpy as np
import pytest

from stockcast.modeling.gate import GateWindow
from stockcast.registry.promotion import decide, should_promote

NAIVE, DRIFT, RIDGE, FOREST = "naive()", "drift()", "ridge(alpha=10.0)", "random_forest(max_depth=5)"


def window(edges: dict[str, float], sessions: int = 250, seed: int = 1, noise: float = 1.0) -> GateWindow:
    """Returns y = signal + noise; a candidate with edge e forecasts e * signal plus a little
    estimation noise, so e = 0 is noise-level skill and e near 1 knows the signal."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 0.4, sessions)
    close = 100 + np.cumsum(rng.normal(0, 1, sessions))
    actual = close + signal + rng.normal(0, noise, sessions)
    forecasts = {NAIVE: close}
    for key, edge in edges.items():
        forecasts[key] = close + edge * signal + rng.normal(0, 0.05, sessions)
    return GateWindow(actual=actual, naive=close, forecasts=forecasts)


def test_a_candidate_with_a_real_edge_becomes_the_first_champion():
    decision = decide(window({RIDGE: 0.9, DRIFT: 0.0}), champion=None)
    assert decision.promote and decision.chosen == RIDGE
    test, p_value = decision.evidence(versus_naive=True)
    assert test == "DM-HLN" and p_value is not None and p_value < 0.05
    assert "Holm over 2" in decision.reason


def test_noise_level_skill_rarely_replaces_naive_though_it_often_has_the_lowest_rmse():
    """Four candidates with no skill (naive plus estimation noise) over 300 windows: the lowest
    RMSE beats naive's most of the time by chance; the gate promotes at about alpha."""
    candidates = {RIDGE: 0.0, DRIFT: 0.0, FOREST: 0.0, "arima(p=1,q=1)": 0.0}
    lowest_rmse_wins = gate_promotes = 0
    for seed in range(300):
        trial = window(candidates, seed=seed)
        lowest_rmse_wins += min(trial.rmse(key) for key in candidates) < trial.naive_rmse
        decision = decide(trial, champion=None)
        gate_promotes += decision.chosen != NAIVE
        if decision.chosen == NAIVE:
            assert decision.reason.startswith("no candidate beat naive significantly")
            assert decision.reason.endswith("naive serves")
    assert lowest_rmse_wins / 300 > 0.5
    assert gate_promotes / 300 <= 0.08


def test_holm_correction_makes_a_best_of_many_pass_harder_than_a_single_test():
    """p between alpha/m and alpha: significant alone, not after picking among four."""
    for seed in range(200):
        trial = window({RIDGE: 0.03, DRIFT: 0.0, FOREST: 0.0, "arima(p=1,q=1)": 0.0}, seed=seed)
        alone = should_promote(trial, RIDGE, None)
        _, p_alone = alone.evidence(True, RIDGE)
        if p_alone is not None and 0.0125 < p_alone < 0.05 and trial.rmse(RIDGE) < trial.naive_rmse:
            assert alone.promote and alone.chosen == RIDGE
            together = decide(trial, None)
            assert together.chosen == NAIVE
            _, p_together = together.evidence(True, RIDGE)
            assert p_together == pytest.approx(min(1.0, 4 * p_alone))
            return
    pytest.fail("no seed gave a p-value between alpha/4 and alpha")


def test_a_challenger_must_also_beat_a_champion_that_still_beats_naive():
    trial = window({FOREST: 0.9, RIDGE: 0.92}, seed=2)
    decision = decide(trial, champion=FOREST)
    # Both beat naive; ridge's tiny extra edge over the champion is noise, so the champion's
    # specification is refitted.
    assert decision.chosen == FOREST and decision.promote
    assert decision.reason.startswith("refit of the champion's random_forest")
    assert "no candidate that beat naive also beat champion" in decision.reason


def test_a_clearly_better_challenger_replaces_a_champion_with_a_weak_edge():
    trial = window({FOREST: 0.5, RIDGE: 1.0}, seed=3, noise=0.3)
    decision = decide(trial, champion=FOREST)
    assert decision.chosen == RIDGE
    test, p_value = decision.evidence(versus_naive=False)
    assert test == "DM-HLN" and p_value is not None and p_value < 0.05
    assert "and champion random_forest" in decision.reason


def test_a_champion_that_lost_its_edge_gives_way_to_naive_or_the_best_that_beats_it():
    faded = window({FOREST: 0.0, RIDGE: 0.0}, seed=6)
    to_naive = decide(faded, champion=FOREST)
    assert to_naive.promote and to_naive.chosen == NAIVE
    assert to_naive.reason.startswith(
        "champion random_forest(max_depth=5) no longer beats naive significantly"
    )
    replaced = decide(window({FOREST: 0.0, RIDGE: 0.9}, seed=6), champion=FOREST)
    assert replaced.chosen == RIDGE


def test_the_margin_is_an_extra_condition_after_the_tests():
    trial = window({RIDGE: 0.9}, seed=8)
    ratio = trial.rmse(RIDGE) / trial.naive_rmse
    assert decide(trial, None, margin=0.0).chosen == RIDGE
    held_back = decide(trial, None, margin=1 - ratio + 0.01)
    assert held_back.chosen == NAIVE and "margin" in held_back.reason


def test_a_window_too_short_for_a_test_keeps_the_champion():
    short = window({RIDGE: 0.9}, sessions=12)
    kept = decide(short, champion=RIDGE)
    assert not kept.promote and kept.chosen == RIDGE
    assert kept.reason == "kept: window too short for a test (n = 12 < 30)"
    first = decide(short, champion=None)
    assert first.promote and first.chosen == NAIVE


def test_an_operator_promotion_of_a_noise_level_version_is_refused():
    trial = window({RIDGE: 0.0}, seed=9)
    decision = should_promote(trial, RIDGE, champion=NAIVE)
    assert not decision.promote and decision.chosen == NAIVE
    assert decision.reason.startswith("kept: no candidate beat naive significantly")


def test_naive_is_promoted_over_a_champion_that_no_longer_beats_it():
    trial = window({RIDGE: 0.0}, seed=9)
    assert should_promote(trial, NAIVE, champion=RIDGE).promote


def test_every_test_made_is_in_the_decision():
    decision = decide(window({FOREST: 0.5, RIDGE: 1.0}, seed=3, noise=0.3), champion=FOREST)
    made = {(found.candidate, found.against, found.test) for found in decision.comparisons}
    assert (FOREST, "naive", "DM-HLN") in made  # does the champion still beat naive?
    assert (RIDGE, "naive", "DM-HLN") in made
    assert (RIDGE, FOREST, "DM-HLN") in made
    assert '"test": "DM-HLN"' in decision.tests_json()
    assert decision.alpha == 0.05 and decision.sessions == 250


def test_clark_west_calls_a_real_but_unexploitable_signal_significant_and_dm_does_not():
    """A candidate that knows the signal but adds estimation noise as large as it: Clark-West
    (population skill) is significant, its realised loss is no better than naive's, so the
    gate's DM-HLN keeps naive; the same gate with Clark-West would have promoted it."""
    rng = np.random.default_rng(21)
    sessions = 250
    signal = rng.normal(0, 0.4, sessions)
    close = 100 + np.cumsum(rng.normal(0, 1, sessions))
    actual = close + signal + rng.normal(0, 1.0, sessions)
    noisy = close + 0.5 * signal + rng.normal(0, 0.33, sessions)
    trial = GateWindow(actual=actual, naive=close, forecasts={NAIVE: close, RIDGE: noisy})
    with_dm = decide(trial, None)
    with_cw = decide(trial, None, versus_naive_test="Clark-West")
    assert with_cw.chosen == RIDGE and with_cw.evidence(True)[0] == "Clark-West"
    assert with_dm.chosen == NAIVE and with_dm.comparisons[0].p_value > 0.05


def test_absurd_prices_keep_the_champion_instead_of_crashing_the_training():
    """Closes of 1e308 pass as floats, but their squared errors overflow: no test is possible."""
    trial = window({RIDGE: 0.9})
    absurd = GateWindow(
        actual=trial.actual * 1e306,
        naive=trial.naive * 1e306,
        forecasts={RIDGE: trial.forecasts[RIDGE] * 1e306},
    )
    decision = decide(absurd, champion=NAIVE)
    assert not decision.promote and decision.chosen == NAIVE
    assert decision.reason.startswith("kept: the window's closes or forecasts are not finite")
    assert decide(trial, champion=NAIVE).chosen == RIDGE  # the same window at sane prices
