"""The promotion gate: one pure decision, used by every path that can move the champion.

Which model serves a ticker is decided on one out-of-sample window shared by every contender:
the naive forecast, the champion's own specification re-scored there, and the candidates. A
lower RMSE is not enough, because over a few hundred sessions models of equal skill differ by
chance. A candidate must beat the naive forecast by a one-sided Diebold-Mariano test with the
Harvey-Leybourne-Newbold correction (DM-HLN) at ``alpha``, corrected with Holm's step-down
method for having been picked from several, and, where a non-naive champion still beats naive,
beat that champion too (DM-HLN, Holm over the candidates that passed). The margin is an extra
condition on the RMSE ratio after the tests. A champion that no longer beats naive
significantly gives way to the best candidate that does, else to naive; a refit of the
champion's specification follows the same rule.

DM-HLN against naive rather than Clark-West, although every candidate nests the random walk:
Clark-West's null is that the model's population coefficients are those of the random walk, so
it rejects whenever a real signal exists, even one too weak for the estimated model to forecast
better than naive. What is served is the estimated model, and its users pay its realised loss,
which is what DM-HLN tests. On INTC (2021-22), LightGBM had Clark-West p = 0.015 but DM-HLN
p = 0.32, and forecast 2% worse than naive over the next year; the gate audit compares both
tests on every ticker (``stockcast evaluate --gate-audit``). ``decide`` takes Clark-West for
that comparison.

Holm rather than Hansen's SPA: Holm is exact for any dependence between the candidates'
tests, gives every candidate its own adjusted p-value to show in a decision, and is
deterministic; SPA (a bootstrap) is reported beside it by the gate audit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from stockcast.modeling.gate import Comparison, Decision, GateWindow
from stockcast.modeling.significance import CLARK_WEST, DM_HLN, clark_west, diebold_mariano, holm
from stockcast.modeling.specs import NAIVE_KEY, is_naive

# Below this many common sessions a test has too little power to be worth its p-value.
MIN_TEST_SESSIONS = 30
HOLM = "holm"


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _versus_naive(window: GateWindow, key: str, test: str = DM_HLN) -> Comparison:
    if test != CLARK_WEST:
        return _versus(window, key, NAIVE_KEY, against="naive")
    result = clark_west(window.actual, window.naive, window.predicted(key), window.horizon)
    statistic = None if np.isnan(result.statistic) else result.statistic
    return Comparison(key, "naive", result.test, statistic, result.p_value)


def _versus(window: GateWindow, key: str, incumbent: str, against: str | None = None) -> Comparison:
    """DM-HLN: does ``key`` have a lower squared loss than ``incumbent`` on the window?"""
    incumbent_loss = (window.actual - window.predicted(incumbent)) ** 2
    candidate_loss = (window.actual - window.predicted(key)) ** 2
    result = diebold_mariano(incumbent_loss, candidate_loss, window.horizon)
    statistic = None if np.isnan(result.statistic) else result.statistic
    return Comparison(key, against or incumbent, DM_HLN, statistic, result.p_value)


def _adjusted(comparisons: list[Comparison]) -> list[Comparison]:
    """Holm over the family when it has more than one member; a single test stands as it is."""
    if len(comparisons) < 2:
        return comparisons
    adjusted = holm({found.candidate: found.p_value for found in comparisons})
    return [
        Comparison(
            found.candidate,
            found.against,
            found.test,
            found.statistic,
            found.p_value,
            adjusted[found.candidate],
        )
        for found in comparisons
    ]


def _evidence_text(found: Comparison, family: int) -> str:
    text = f"{found.test} p = {_p(found.p_value)}"
    if found.p_adjusted is not None:
        text += f", Holm over {family} p = {_p(found.p_adjusted)}"
    return text


def decide(
    window: GateWindow,
    champion: str | None,
    alpha: float = 0.05,
    margin: float = 0.0,
    eligible: Iterable[str] | None = None,
    versus_naive_test: str = DM_HLN,
) -> Decision:
    """Which specification should serve after this window, and whether that moves the alias.

    ``eligible`` are the specifications that may be chosen (every candidate of a training; the
    one version an operator asks to promote). The chosen one is promoted when it is new, or when
    it is the champion's own specification refitted (``chosen == champion``); the decision is
    "kept" when an eligible candidate is not good enough or the window is too short to test.
    """
    candidates = list(dict.fromkeys(eligible if eligible is not None else window.forecasts))
    sessions = window.sessions
    if sessions < MIN_TEST_SESSIONS:
        if champion is None and any(is_naive(key) for key in candidates):
            naive_key = next(key for key in candidates if is_naive(key))
            return Decision(
                True,
                f"first champion: naive, which needs no test; window too short for a test "
                f"(n = {sessions} < {MIN_TEST_SESSIONS})",
                naive_key,
                alpha=alpha,
                sessions=sessions,
            )
        return Decision(
            False,
            f"kept: window too short for a test (n = {sessions} < {MIN_TEST_SESSIONS})",
            champion,
            alpha=alpha,
            sessions=sessions,
        )

    if not window.finite():
        return Decision(
            False,
            "kept: the window's closes or forecasts are not finite (or their squared errors overflow); "
            "nothing can be tested on it",
            champion,
            alpha=alpha,
            sessions=sessions,
        )
    if champion is not None and not is_naive(champion) and champion not in window.forecasts:
        return Decision(
            False,
            f"kept: the champion's {champion} was not scored on this window",
            champion,
            alpha=alpha,
            sessions=sessions,
        )
    naive_rmse = window.naive_rmse
    comparisons: list[Comparison] = []
    holds, champion_text = _champion_status(window, champion, alpha, comparisons, versus_naive_test)
    family = [key for key in candidates if not is_naive(key) and not (holds and key == champion)]
    versus_naive = _adjusted([_versus_naive(window, key, versus_naive_test) for key in family])
    comparisons += versus_naive
    incumbent = champion if holds and champion is not None and not is_naive(champion) else None
    incumbent_rmse = window.rmse(incumbent) if incumbent else naive_rmse
    beat_naive = [
        found.candidate
        for found in versus_naive
        if found.p_used < alpha and window.rmse(found.candidate) < naive_rmse
    ]
    beat_incumbent = beat_naive
    if incumbent is not None:
        versus_champion = _adjusted([_versus(window, key, incumbent) for key in beat_naive])
        comparisons += versus_champion
        beat_incumbent = [
            found.candidate
            for found in versus_champion
            if found.p_used < alpha and window.rmse(found.candidate) < incumbent_rmse
        ]
    within_margin = [key for key in beat_incumbent if window.rmse(key) < incumbent_rmse * (1.0 - margin)]
    chosen = min(within_margin, key=window.rmse) if within_margin else None
    if chosen is not None:
        decision_text = _promotion_text(window, chosen, incumbent, comparisons, len(family), margin)
        return Decision(
            True,
            f"{champion_text}{decision_text}",
            chosen,
            tuple(comparisons),
            alpha=alpha,
            sessions=sessions,
        )

    fallback = incumbent or next((key for key in candidates if is_naive(key)), NAIVE_KEY)
    why_not = _why_none(window, versus_naive, beat_naive, beat_incumbent, incumbent, margin)
    if fallback not in candidates:
        return Decision(
            False,
            f"kept: {champion_text}{why_not}",
            champion,
            tuple(comparisons),
            alpha=alpha,
            sessions=sessions,
        )
    if fallback == incumbent:
        still = next(
            found for found in comparisons if found.candidate == incumbent and found.against == "naive"
        )
        return Decision(
            True,
            f"refit of the champion's {incumbent} on newer data: still beats naive "
            f"({_evidence_text(still, 1)}); {why_not}",
            fallback,
            tuple(comparisons),
            alpha=alpha,
            sessions=sessions,
        )
    return Decision(
        True,
        f"{champion_text}{why_not}: naive serves",
        fallback,
        tuple(comparisons),
        alpha=alpha,
        sessions=sessions,
    )


def _champion_status(
    window: GateWindow, champion: str | None, alpha: float, comparisons: list[Comparison], test: str
) -> tuple[bool, str]:
    """Whether the champion still beats naive significantly, and the words for it.

    The champion was chosen before this window, so its own test needs no correction.
    """
    if champion is None:
        return False, ""
    if is_naive(champion):
        return True, ""
    found = _versus_naive(window, champion, test)
    comparisons.append(found)
    if found.p_value < alpha and window.rmse(champion) < window.naive_rmse:
        return True, ""
    return False, (
        f"champion {champion} no longer beats naive significantly (RMSE {window.rmse(champion):.4f} "
        f"vs {window.naive_rmse:.4f}, {found.test} p = {_p(found.p_value)}); "
    )


def _promotion_text(
    window: GateWindow,
    chosen: str,
    incumbent: str | None,
    comparisons: list[Comparison],
    family: int,
    margin: float,
) -> str:
    versus_naive = next(
        found for found in comparisons if found.candidate == chosen and found.against == "naive"
    )
    text = (
        f"{chosen} RMSE {window.rmse(chosen):.4f} beat naive {window.naive_rmse:.4f} "
        f"({_evidence_text(versus_naive, family)})"
    )
    if incumbent is not None:
        versus_champion = next(
            found for found in comparisons if found.candidate == chosen and found.against == incumbent
        )
        qualified = sum(1 for found in comparisons if found.against == incumbent)
        text += (
            f" and champion {incumbent} {window.rmse(incumbent):.4f} "
            f"({_evidence_text(versus_champion, qualified)})"
        )
    if margin > 0:
        text += f", by more than the {margin:.1%} margin"
    return text


def _why_none(
    window: GateWindow,
    versus_naive: list[Comparison],
    beat_naive: list[str],
    beat_incumbent: list[str],
    incumbent: str | None,
    margin: float,
) -> str:
    if not versus_naive:
        return "no other candidate"
    best = min(versus_naive, key=lambda found: window.rmse(found.candidate))
    best_text = (
        f"best {best.candidate} RMSE {window.rmse(best.candidate):.4f} vs naive "
        f"{window.naive_rmse:.4f}, {_evidence_text(best, len(versus_naive))}"
    )
    if not beat_naive:
        return f"no candidate beat naive significantly ({best_text})"
    if incumbent is not None and not beat_incumbent:
        return f"no candidate that beat naive also beat champion {incumbent} significantly ({best_text})"
    against = f"champion {incumbent}" if incumbent else "naive"
    return f"no candidate beat {against} by the {margin:.1%} margin ({best_text})"


def should_promote(
    window: GateWindow,
    challenger: str,
    champion: str | None,
    alpha: float = 0.05,
    margin: float = 0.0,
) -> Decision:
    """The gate for one named challenger (an operator's ``models promote``): a single,
    pre-specified test against naive, and against the champion where it still holds."""
    return decide(window, champion, alpha, margin, eligible=[challenger])
