"""Where daily bars come from: Yahoo (``yahoo.py``), the bundled sample, or a file; ``auto``
picks for you. ``factory.make_source`` builds the source a setting names.

Each source returns a ``Fetched``: the canonical bars (see ``bars.py``) plus the tickers it
could not deliver, each with a reason a person can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd

from stockcast.ingest.bars import conform_bars, empty_bars

log = logging.getLogger(__name__)

SAMPLE_TICKERS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
# Ratios of the adjustment factor that are stock splits rather than dividends: a dividend
# moves the factor by a few percent at most, a split by a clean ratio such as 2, 3/2 or 7.
_SPLIT_FACTOR_FLOOR = 1.3
_EVENT_TOLERANCE = 1e-4


class SourceUnavailableError(RuntimeError):
    """The source cannot be reached at all (as opposed to one ticker failing)."""


@dataclass
class Fetched:
    bars: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    @property
    def source(self) -> str:
        sources = self.bars["source"].unique().tolist() if len(self.bars) else []
        return ",".join(sorted(sources)) or "none"


class PriceSource(Protocol):
    name: str

    def fetch(self, tickers: Sequence[str], start: date, end: date) -> Fetched:
        """Daily bars for ``tickers`` with ``start <= date <= end`` (both inclusive)."""
        ...


def _within(bars: pd.DataFrame, tickers: Sequence[str], start: date, end: date) -> pd.DataFrame:
    keep = (
        bars["ticker"].isin(list(tickers))
        & (bars["date"] >= pd.Timestamp(start))
        & (bars["date"] <= pd.Timestamp(end))
    )
    return bars.loc[keep].reset_index(drop=True)


def _missing_failures(bars: pd.DataFrame, tickers: Sequence[str], why: str) -> dict[str, str]:
    present = set(bars["ticker"].unique())
    return {ticker: why for ticker in tickers if ticker not in present}


def split_adjust_from_raw(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn unadjusted bars with a split-and-dividend-adjusted close into split-adjusted bars.

    The factor ``close / adj_close`` steps at every corporate action. A step by a clean ratio
    of 1.3 or more is a split (recorded as ``split_ratio``); a small step is a cash dividend
    (recorded in ``dividends``). Prices before each split are divided by the ratio and volumes
    multiplied by it, as Yahoo publishes its ``Close``.
    """
    frames = []
    for _ticker, group in raw.sort_values(["ticker", "date"]).groupby("ticker", sort=False):
        bars = group.copy()
        factor = bars["close"] / bars["adj_close"]
        step = (factor.shift(1) / factor).fillna(1.0)
        is_split = step >= _SPLIT_FACTOR_FLOOR
        bars["split_ratio"] = np.where(is_split, step.round(2), 1.0)
        dividend_step = (~is_split) & (step > 1 + _EVENT_TOLERANCE)
        previous_close = bars["close"].shift(1)
        bars["dividends"] = np.where(dividend_step, (previous_close * (1 - 1 / step)).round(4), 0.0)
        # Cumulative ratio of all splits strictly after each day.
        later_splits = bars["split_ratio"][::-1].cumprod()[::-1].shift(-1).fillna(1.0)
        for column in ("open", "high", "low", "close"):
            bars[column] = bars[column] / later_splits
        bars["volume"] = bars["volume"] * later_splits
        frames.append(bars)
    return pd.concat(frames, ignore_index=True) if frames else raw


class SampleSource:
    """Real daily bars bundled with ``bokeh_sampledata`` (Quandl WIKI, public domain).

    AAPL, GOOG, IBM and MSFT from 2000-03-01, FB from 2012-05-18, all to 2013-03-01.
    """

    name = "sample"

    def __init__(self) -> None:
        self._bars: pd.DataFrame | None = None

    def _load(self) -> pd.DataFrame:
        if self._bars is None:
            from bokeh_sampledata import package_path

            raw = pd.read_csv(package_path("stocks.csv.gz"), parse_dates=["Date"])
            raw.columns = [column.lower().replace(" ", "_") for column in raw.columns]
            self._bars = conform_bars(split_adjust_from_raw(raw), self.name)
        return self._bars

    def fetch(self, tickers: Sequence[str], start: date, end: date) -> Fetched:
        bars = _within(self._load(), tickers, start, end)
        why = f"not in the bundled sample (it has {', '.join(SAMPLE_TICKERS)})"
        failures = {t: why for t in tickers if t not in SAMPLE_TICKERS}
        failures |= _missing_failures(bars, [t for t in tickers if t not in failures], "no bars in range")
        return Fetched(bars, failures)


class FileSource:
    """Bars from a CSV or parquet file at a path or any fsspec URL (s3://, gs://, ...)."""

    def __init__(self, location: str):
        self.location = location
        self.name = f"file:{location}"

    def _read(self) -> pd.DataFrame:
        import fsspec

        reader = pd.read_parquet if self.location.endswith((".parquet", ".pq")) else pd.read_csv
        try:
            with fsspec.open(self.location, "rb") as handle:
                return reader(handle)
        except FileNotFoundError as error:
            raise SourceUnavailableError(f"price file not found: {self.location}") from error

    def fetch(self, tickers: Sequence[str], start: date, end: date) -> Fetched:
        frame = self._read()
        frame.columns = [str(column).lower() for column in frame.columns]
        if "ticker" in frame.columns:
            frame["ticker"] = frame["ticker"].astype(str)
        bars = _within(conform_bars(frame, "file"), tickers, start, end)
        return Fetched(bars, _missing_failures(bars, tickers, f"not in {self.location} for the range"))


class AutoSource:
    """Yahoo when it answers; the bundled sample, loudly, when it cannot be reached."""

    name = "auto"

    def __init__(self, yahoo: PriceSource, fallback: PriceSource):
        self.yahoo = yahoo
        self.fallback = fallback

    def fetch(self, tickers: Sequence[str], start: date, end: date) -> Fetched:
        try:
            fetched = self.yahoo.fetch(tickers, start, end)
        except SourceUnavailableError as error:
            reason = str(error) if str(error).startswith("Yahoo") else f"Yahoo Finance unreachable ({error})"
        else:
            if len(fetched.bars):
                return fetched
            first = next(iter(fetched.failures.values()), "no reason given")
            reason = f"Yahoo Finance unreachable or empty (no bars for any ticker; first reason: {first})"
        fetched = self.fallback.fetch(tickers, start, end)
        fetched.note = (
            f"{reason}; using the bundled sample data (Quandl WIKI via bokeh_sampledata, "
            "ends 2013-03-01). Rows are stored with source='sample'."
        )
        return fetched


__all__ = [
    "AutoSource",
    "Fetched",
    "FileSource",
    "PriceSource",
    "SampleSource",
    "SourceUnavailableError",
    "empty_bars",
    "split_adjust_from_raw",
]
