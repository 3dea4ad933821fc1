"""Validation rejects a bad batch whole, naming ticker, date and rule."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from stockcast.ingest.bars import (
    InvalidBatchError,
    conform_bars,
    find_violations,
    stale_mask,
    validate_bars,
)

TODAY = date(2030, 1, 1)


@pytest.fixture
def bars(make_bars):
    return make_bars(("AAA",), days=30)


def test_clean_batch_passes(bars):
    assert validate_bars(bars, TODAY) is bars


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("close", np.nan, "missing (NaN) price"),
        ("open", 0.0, "non-positive price"),
        ("low", -1.0, "non-positive price"),
        ("high", 1.0, "high below open or close"),
        ("low", 10_000.0, "low above open or close"),
        ("volume", -5.0, "negative volume"),
    ],
)
def test_each_rule_names_ticker_date_and_rule(bars, column, value, rule):
    bars.loc[10, column] = value
    with pytest.raises(InvalidBatchError) as caught:
        validate_bars(bars, TODAY)
    day = bars.loc[10, "date"].date().isoformat()
    assert f"AAA {day}: {rule}" in str(caught.value)


def test_duplicate_and_future_dates_are_rejected(bars):
    duplicated = pd.concat([bars, bars.iloc[[5]]], ignore_index=True)
    assert any(v.rule == "duplicate date" for v in find_violations(duplicated, TODAY))
    assert any("future" in v.rule for v in find_violations(bars, bars["date"].iloc[20].date()))


def test_conform_normalises_yahoo_style_columns_and_timezones():
    frame = pd.DataFrame(
        {
            "Ticker": ["aapl"],
            "Date": [pd.Timestamp("2024-01-02 00:00", tz="America/New_York")],
            "Open": [1.0],
            "High": [2.0],
            "Low": [0.5],
            "Close": [1.5],
            "Adj Close": [1.4],
            "Volume": [10],
            "Dividends": [0.0],
            "Stock Splits": [0.0],
        }
    )
    bars = conform_bars(frame, "yahoo")
    assert bars.loc[0, "ticker"] == "AAPL"
    assert bars.loc[0, "date"] == pd.Timestamp("2024-01-02")
    assert bars.loc[0, "split_ratio"] == 1.0
    assert bars.loc[0, "adj_close"] == 1.4


def test_missing_columns_are_named():
    with pytest.raises(InvalidBatchError, match="missing column"):
        conform_bars(pd.DataFrame({"ticker": ["A"], "date": ["2024-01-02"]}), "file")


def test_stale_mask_flags_flat_zero_volume_placeholders_only(bars):
    bars.loc[3, ["open", "high", "low", "close"]] = 42.0
    bars.loc[3, "volume"] = 0.0
    bars.loc[4, "volume"] = 0.0  # a real zero-volume day with a moving price is not stale
    assert stale_mask(bars).tolist().count(True) == 1
    assert bool(stale_mask(bars).iloc[3])
