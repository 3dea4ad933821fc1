"""Moving the ``champion`` alias: after training, on an operator's promote, on rollback.

Every path decides with the one gate (``promotion.decide``) on scores from the same
out-of-sample window, moves the alias only after the decision, and records the decision in the
relational store so ``stockcast models history`` can say which version served when, and why.
Training and an operator's promote reach ``apply_decision`` through ``stockcast.lifecycle``,
which scores the window; rollback needs no scores and lives here. Each holds the ticker's
training lease, and the alias moves only after the lease is confirmed (``store/leases.py``).
"""

from __future__ import annotations

import pandas as pd

from stockcast.context import Context
from stockcast.modeling.gate import Decision, GateWindow
from stockcast.registry.mlflow_registry import CHALLENGER, CHAMPION, RegisteredVersion
from stockcast.store.leases import TrainingLease


def decision_tags(decision: Decision, spec_key: str) -> dict[str, str]:
    """What a registry version carries of the decision about it: outcome, reason and tests."""
    tags = {"decision": "promoted" if decision.promote else "kept", "decision_reason": decision.reason}
    for versus_naive, name in ((True, "naive"), (False, "champion")):
        test, p_value = decision.evidence(versus_naive, spec_key)
        if test is not None and p_value is not None:
            tags[f"test_vs_{name}"] = test
            tags[f"p_value_vs_{name}"] = repr(float(p_value))
    if decision.alpha is not None:
        tags["alpha"] = repr(decision.alpha)
    return tags


def apply_decision(
    context: Context,
    ticker: str,
    challenger: RegisteredVersion,
    champion: RegisteredVersion | None,
    window: GateWindow | None,
    decision: Decision,
    action: str,
    *,
    lease: TrainingLease,
    forced: bool = False,
    trigger: str | None = None,
) -> None:
    """Move the alias the decision calls for, tag the version, and record the decision, while
    ``lease`` (the ticker's, taken before the champion was read) still holds: it is renewed by
    its token first, and ``LeaseLostError`` leaves the aliases and the history untouched."""
    registry = context.registry
    horizon = challenger.horizon
    lease.confirm()
    registry.set_alias(ticker, CHAMPION if decision.promote else CHALLENGER, challenger.version, horizon)
    registry.tag_version(ticker, challenger.version, decision_tags(decision, challenger.spec.key()), horizon)

    def rmse(version: RegisteredVersion | None) -> float | None:
        if window is None or version is None:
            return None
        key = version.spec.key()
        return window.rmse(key) if key in window.forecasts or key.startswith("naive(") else None

    test_vs_naive, p_vs_naive = decision.evidence(True, challenger.spec.key())
    test_vs_champion, p_vs_champion = decision.evidence(False, challenger.spec.key())
    context.store.record_decision(
        {
            "decided_at": context.now(),
            "ticker": ticker,
            "horizon": horizon,
            "action": action,
            "promoted": decision.promote,
            "forced": forced,
            "challenger_version": challenger.version,
            "challenger_spec": challenger.spec.key(),
            "challenger_rmse": rmse(challenger),
            "champion_version": champion.version if champion else None,
            "champion_spec": champion.spec.key() if champion else None,
            "champion_rmse": rmse(champion),
            "naive_rmse": window.naive_rmse if window else None,
            "window_start": window.start if window else None,
            "window_end": window.end if window else None,
            "reason": decision.reason,
            "trigger": trigger,
            "test_vs_naive": test_vs_naive,
            "p_value_vs_naive": p_vs_naive,
            "test_vs_champion": test_vs_champion,
            "p_value_vs_champion": p_vs_champion,
            "alpha": decision.alpha,
            "window_sessions": decision.sessions,
            "tests": decision.tests_json() if decision.comparisons else None,
            "decided_by": lease.owner,
            "lease_acquired_at": lease.acquired_at,
        }
    )


def previous_champion(context: Context, ticker: str, current: str, horizon: int = 1) -> str | None:
    """The version the current champion replaced when it was promoted (not by a rollback)."""
    decisions = context.store.load_decisions(ticker, horizon)
    made_current = decisions[
        decisions["promoted"].astype(bool)
        & (decisions["challenger_version"] == current)
        & (decisions["action"] != "rollback")
    ]
    if made_current.empty:
        return None
    previous = made_current["champion_version"].iloc[-1]
    return None if pd.isna(previous) else str(previous)


def rollback(context: Context, ticker: str, wait_seconds: float | None = None, horizon: int = 1) -> Decision:
    """Put back the champion the current one (at ``horizon``) replaced, holding the ticker's
    training lease (waiting up to ``wait_seconds`` for a training of it, the setting when None)."""
    with context.leases.holding(ticker, wait_seconds) as lease:
        registry = context.registry
        champion = registry.champion(ticker, horizon)
        named = ticker if horizon == 1 else f"{ticker} at {horizon} sessions"
        if champion is None:
            raise LookupError(f"{named} has no champion to roll back")
        previous = previous_champion(context, ticker, champion.version, horizon)
        if previous is None:
            raise LookupError(
                f"{named}'s champion v{champion.version} replaced no earlier version; nothing to roll back to"
            )
        restored = registry.version(ticker, previous, horizon)
        decision = Decision(True, f"rolled back from v{champion.version} to v{previous}")
        apply_decision(
            context, ticker, restored, champion, None, decision, "rollback", lease=lease, forced=True
        )
        return decision
