"""The canonical frame of daily bars and the rules a batch must pass before it is stored.

Every source returns this frame: one row per (ticker, date), ``close`` split-adjusted,
``adj_close`` split- and dividend-adjusted when the source has it, ``dividends`` in cash per
share on the ex-date, ``split_ratio`` the new-for-old ratio on the split date (1.0 when none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

BAR_COLUMNS = [
    "ticker",
    "date",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "dividends",
    "split_ratio",
    "source",
]
PRICE_COLUMNS = ["open", "high", "low", "close"]
# Adjusted histories are rounded by the publisher; allow that much slack in the range rules.
RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Violation:
    ticker: str
    day: date | None
    rule: str

    def __str__(self) -> str:
        where = f"{self.ticker} {self.day.isoformat()}" if self.day else self.ticker
        return f"{where}: {self.rule}"


class InvalidBatchError(ValueError):
    """A batch broke a rule; nothing of it was stored."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        shown = "; ".join(str(violation) for violation in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        super().__init__(f"rejected batch, {len(violations)} problem(s): {shown}{more}")


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype="float64") for column in BAR_COLUMNS})
    frame["ticker"] = frame["ticker"].astype("object")
    frame["source"] = frame["source"].astype("object")
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def conform_bars(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bring a source's frame to the canonical columns and types, without judging its values."""
    bars = frame.copy()
    bars.columns = [str(column).strip().lower().replace(" ", "_") for column in bars.columns]
    bars = bars.rename(columns={"stock_splits": "split_ratio", "adj.close": "adj_close"})
    missing = {"ticker", "date", *PRICE_COLUMNS} - set(bars.columns)
    if missing:
        raise InvalidBatchError([Violation("*", None, f"missing column(s) {sorted(missing)}")])
    for optional, default in (("adj_close", np.nan), ("volume", np.nan), ("dividends", 0.0)):
        if optional not in bars.columns:
            bars[optional] = default
    if "split_ratio" not in bars.columns:
        bars["split_ratio"] = 1.0
    # Yahoo writes 0 for "no split" in its actions column.
    bars["split_ratio"] = bars["split_ratio"].fillna(0.0).replace(0.0, 1.0)
    bars["dividends"] = bars["dividends"].fillna(0.0)
    bars["ticker"] = bars["ticker"].astype(str).str.upper()
    dates = pd.to_datetime(bars["date"])
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_localize(None)
    bars["date"] = dates.dt.normalize()
    for column in [*PRICE_COLUMNS, "adj_close", "volume", "dividends", "split_ratio"]:
        bars[column] = pd.to_numeric(bars[column], errors="coerce").astype("float64")
    bars["source"] = source
    return bars[BAR_COLUMNS].sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def find_violations(bars: pd.DataFrame, today: date) -> list[Violation]:
    """Every rule a batch breaks, each naming ticker, date and rule. Empty means valid."""
    found: list[Violation] = []

    def flag(mask: pd.Series, rule: str) -> None:
        for ticker, day in bars.loc[mask, ["ticker", "date"]].itertuples(index=False):
            found.append(Violation(ticker, pd.Timestamp(day).date(), rule))

    prices = bars[PRICE_COLUMNS]
    flag(prices.isna().any(axis=1), "missing (NaN) price")
    flag(np.isinf(prices).any(axis=1), "non-finite price")
    flag((prices <= 0).any(axis=1), "non-positive price")
    flag(bars["adj_close"].notna() & (bars["adj_close"] <= 0), "non-positive adjusted close")
    flag(bars["volume"] < 0, "negative volume")
    slack = 1 + RANGE_TOLERANCE
    top = bars[["open", "close"]].max(axis=1)
    bottom = bars[["open", "close"]].min(axis=1)
    flag(bars["high"] * slack < top, "high below open or close")
    flag(bars["low"] > bottom * slack, "low above open or close")
    flag(bars.duplicated(["ticker", "date"], keep="first"), "duplicate date")
    flag(bars["date"] > pd.Timestamp(today), f"date in the future (after {today.isoformat()})")
    flag(bars["split_ratio"] <= 0, "non-positive split ratio")
    flag(bars["dividends"] < 0, "negative dividend")
    return found


def validate_bars(bars: pd.DataFrame, today: date) -> pd.DataFrame:
    """Return the batch unchanged when it passes every rule, else raise naming what broke."""
    violations = find_violations(bars, today)
    if violations:
        raise InvalidBatchError(violations)
    return bars


def stale_mask(bars: pd.DataFrame) -> pd.Series:
    """Placeholder bars: zero volume traded and a flat price, as vendors forward-fill them.
    An unknown volume (NaN) is not evidence of a placeholder."""
    flat = (bars["open"] == bars["close"]) & (bars["high"] == bars["low"])
    return (bars["volume"] == 0) & flat
