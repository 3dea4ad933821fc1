"""Property-based checks (hypothesis) of what stands between a price source and a forecast:
the batch validator and the feature code. Random bars with gaps, NaN, infinities, zero
volume, extreme moves and splits are either rejected with a reason or turned into finite
features; nothing crashes and nothing turns silently into NaN downstream."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockcast.features.build import FEATURE_COLUMNS, MIN_HISTORY, build_features, complete_rows
from stockcast.ingest.bars import InvalidBatchError, conform_bars, validate_bars

TODAY = date(2024, 6, 28)
ANY_PRICE = st.one_of(
    st.floats(min_value=1e-4, max_value=1e6),
    st.sampled_from([0.0, -1.0, float("nan"), float("inf"), float("-inf")]),
)
GOOD_PRICE = st.floats(min_value=0.01, max_value=1e5)


@st.composite
def raw_batches(draw) -> pd.DataFrame:
    """Anything a broken source might send: any prices, duplicate or future dates."""
    rows = draw(st.integers(min_value=1, max_value=30))
    offsets = draw(st.lists(st.integers(min_value=-400, max_value=5), min_size=rows, max_size=rows))
    frame = pd.DataFrame(
        {
            "ticker": draw(st.lists(st.sampled_from(["AAA", "BBB"]), min_size=rows, max_size=rows)),
            "date": [pd.Timestamp(TODAY) + pd.Timedelta(days=offset) for offset in offsets],
            **{
                column: draw(st.lists(ANY_PRICE, min_size=rows, max_size=rows))
                for column in ("open", "high", "low", "close")
            },
            "volume": draw(
                st.lists(st.sampled_from([0.0, 1e3, 5e6, -5.0, float("nan")]), min_size=rows, max_size=rows)
            ),
        }
    )
    return conform_bars(frame, "test")


@pytest.mark.fault(
    "Prices: a row of infinite prices that passes every range rule",
    "Rejected with `non-finite price` (found by the property test below)",
)
def test_an_infinite_price_is_rejected_even_when_every_range_rule_holds():
    """Found by the property below: a row of infinities satisfies high >= close >= low."""
    frame = pd.DataFrame(
        {
            "ticker": ["AAA"],
            "date": [pd.Timestamp("2024-06-03")],
            **{column: [np.inf] for column in ("open", "high", "low", "close")},
        }
    )
    try:
        validate_bars(conform_bars(frame, "test"), TODAY)
    except InvalidBatchError as error:
        assert "non-finite price" in str(error)
    else:
        raise AssertionError("an infinite price was accepted")


@pytest.mark.fault(
    "Prices: random batches (any price incl. 0, negative, NaN, ±inf; negative or NaN volume; duplicate "
    "and future dates)",
    "Rejected with a reason naming ticker, date and rule, or accepted only when every rule holds; never a crash",
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_batches())
def test_a_batch_is_rejected_with_reasons_or_passes_only_when_every_rule_holds(bars):
    try:
        validate_bars(bars, TODAY)
    except InvalidBatchError as error:
        assert error.violations and all(violation.rule for violation in error.violations)
        assert str(error).startswith("rejected batch")
        return
    prices = bars[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    assert (bars["high"] * (1 + 1e-6) >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1) * (1 + 1e-6)).all()
    assert not bars.duplicated(["ticker", "date"]).any()
    assert (bars["date"] <= pd.Timestamp(TODAY)).all()
    assert not (bars["volume"] < 0).any()


@st.composite
def valid_histories(draw) -> pd.DataFrame:
    """Histories that pass the validator: random walks with extreme days, gaps in the dates,
    zero-volume days, flat placeholder days and split-adjusted jumps."""
    days = draw(st.integers(min_value=MIN_HISTORY + 5, max_value=MIN_HISTORY + 60))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    rng = np.random.default_rng(seed)
    moves = rng.normal(0, draw(st.sampled_from([0.001, 0.02, 0.2])), days)
    shocks = draw(st.lists(st.integers(min_value=1, max_value=days - 1), max_size=3))
    moves[shocks] = draw(st.sampled_from([-0.9, 0.9, 2.0]))  # crashes and spikes
    close = np.maximum(draw(GOOD_PRICE) * np.exp(np.cumsum(moves)), 1e-3)
    open_ = close * np.exp(rng.normal(0, 0.005, days))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, days))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, days))
    volume = rng.choice([0.0, 1e3, 1e6], size=days)
    gaps = np.cumsum(rng.choice([1, 1, 1, 3, 10], size=days))
    frame = pd.DataFrame(
        {
            "ticker": "AAA",
            "date": pd.Timestamp("2015-01-01") + pd.to_timedelta(gaps, unit="D"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    flat = draw(st.lists(st.integers(min_value=0, max_value=days - 1), max_size=3))
    for row in set(flat):  # vendors' forward-filled placeholders: flat price, nothing traded
        frame.loc[row, ["open", "high", "low"]] = frame.loc[row, "close"]
        frame.loc[row, "volume"] = 0.0
    return validate_bars(conform_bars(frame, "test"), TODAY)


@pytest.mark.fault(
    "Features: random valid histories (gaps, splits, flat stretches, extreme moves)",
    "Every feature is finite wherever the history is long enough; no silent NaN reaches a forecast",
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_histories())
def test_features_of_a_valid_history_are_finite_wherever_history_suffices(bars):
    features = build_features(bars)
    values = features[FEATURE_COLUMNS].to_numpy(dtype=float)
    assert not np.isinf(values).any()
    complete = complete_rows(features)
    # Every session with enough trading history has a complete, finite feature row.
    trading = len(features)
    assert len(complete) >= trading - MIN_HISTORY
    assert np.isfinite(complete[FEATURE_COLUMNS].to_numpy(dtype=float)).all()


@pytest.mark.fault(
    "Features: later bars arriving after a day's features were computed",
    "That day's features are unchanged (no future bar is used)",
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_histories(), st.integers(min_value=1, max_value=20))
def test_features_never_change_when_later_bars_arrive(bars, cut):
    """Causality: the features of day t are the same with or without the bars after t."""
    full = build_features(bars)
    early = build_features(bars.iloc[: len(bars) - cut])
    merged = early.merge(full, on=["ticker", "date"], suffixes=("", "_full"))
    for column in FEATURE_COLUMNS:
        np.testing.assert_allclose(
            merged[column].to_numpy(float), merged[f"{column}_full"].to_numpy(float), rtol=1e-9, atol=1e-12
        )
