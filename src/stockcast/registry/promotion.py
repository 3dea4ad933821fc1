"""The promotion gate: one pure decision, used by every path that can move the champion."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contender:
    """A model specification and its RMSE on the common out-of-sample window."""

    spec_key: str
    rmse: float

    @property
    def is_naive(self) -> bool:
        return self.spec_key.startswith("naive(")


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def should_promote(
    challenger: Contender,
    champion: Contender | None,
    naive_rmse: float,
    margin: float = 0.0,
) -> Decision:
    """Promote only a challenger that beats the naive forecast and the champion (by ``margin``,
    a fraction of the champion's RMSE), both scored on the same window.

    The naive forecast may itself become champion when nothing beats it. A challenger with the
    champion's own specification is the champion refitted on newer data: it replaces the old
    fit when it still beats naive, because its score on the common window is the champion's.
    """
    beats_naive = challenger.is_naive or challenger.rmse < naive_rmse
    if not beats_naive:
        return Decision(
            False,
            f"{challenger.spec_key} RMSE {challenger.rmse:.4f} does not beat naive {naive_rmse:.4f}",
        )
    if champion is None:
        return Decision(True, f"first champion: {challenger.spec_key} RMSE {challenger.rmse:.4f}")
    if challenger.spec_key == champion.spec_key:
        return Decision(
            True,
            f"refit of the champion's {challenger.spec_key} on newer data "
            f"(RMSE {challenger.rmse:.4f}, naive {naive_rmse:.4f})",
        )
    needed = champion.rmse * (1.0 - margin)
    if challenger.rmse < needed:
        return Decision(
            True,
            f"{challenger.spec_key} RMSE {challenger.rmse:.4f} beats champion "
            f"{champion.spec_key} {champion.rmse:.4f} (margin {margin:.1%}) and naive {naive_rmse:.4f}",
        )
    return Decision(
        False,
        f"{challenger.spec_key} RMSE {challenger.rmse:.4f} does not beat champion "
        f"{champion.spec_key} {champion.rmse:.4f} by the {margin:.1%} margin",
    )
