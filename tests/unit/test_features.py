"""Features are causal, per ticker, and computed on split-adjusted prices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockcast.features.build import (
    FEATURE_COLUMNS,
    MIN_HISTORY,
    TARGET_COLUMN,
    add_target,
    build_features,
    complete_rows,
)


@pytest.mark.parametrize("cut_index", [60, 200, 431, 598])
def test_changing_bars_after_t_leaves_every_feature_at_t_unchanged(make_bars, cut_index):
    bars = make_bars(("AAA", "BBB"), days=600)
    before = build_features(bars)
    cut_date = bars["date"].iloc[cut_index]
    future = bars["date"] > cut_date
    rng = np.random.default_rng(cut_index)
    tampered = bars.copy()
    scale = rng.uniform(0.5, 2.0, future.sum())
    for column in ("open", "high", "low", "close"):
        tampered.loc[future, column] = tampered.loc[future, column] * scale
    tampered.loc[future, "volume"] = tampered.loc[future, "volume"] * rng.uniform(0.1, 10, future.sum())
    after = build_features(tampered)
    past = before["date"] <= cut_date
    pd.testing.assert_frame_equal(before.loc[past, FEATURE_COLUMNS], after.loc[past, FEATURE_COLUMNS])
    # The tampering did reach the future rows, so the comparison above had teeth.
    assert not np.allclose(
        before.loc[~past, "log_ret_1"].to_numpy(),
        after.loc[~past, "log_ret_1"].to_numpy(),
        equal_nan=True,
    )


def test_features_of_one_ticker_do_not_depend_on_another(make_bars):
    both = make_bars(("AAA", "BBB"), days=300)
    alone = build_features(both[both["ticker"] == "BBB"]).reset_index(drop=True)
    together = build_features(both)
    together = together[together["ticker"] == "BBB"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, together)


def test_return_features_match_their_definitions(make_bars):
    bars = make_bars(("AAA",), days=120)
    features = build_features(bars)
    close = bars["close"]
    assert np.allclose(features["log_ret_5"].iloc[5:], np.log(close / close.shift(5)).iloc[5:])
    assert np.allclose(features["ret_1"].iloc[1:], close.pct_change().iloc[1:])
    assert features["log_ret_5"].iloc[:5].isna().all()
    assert features["rsi_14"].dropna().between(0, 100).all()


def test_every_feature_is_present_once_history_suffices(make_bars):
    features = build_features(make_bars(("AAA",), days=MIN_HISTORY + 5))
    assert features[FEATURE_COLUMNS].iloc[MIN_HISTORY - 1 :].notna().all().all()
    assert len(complete_rows(features)) >= 5


def test_target_is_the_next_sessions_log_return_and_blank_on_the_last_day(make_bars):
    bars = make_bars(("AAA", "BBB"), days=50)
    labelled = add_target(build_features(bars))
    aaa = labelled[labelled["ticker"] == "AAA"]
    expected = np.log(aaa["close"].shift(-1) / aaa["close"])
    assert np.allclose(aaa[TARGET_COLUMN].iloc[:-1], expected.iloc[:-1])
    assert labelled.groupby("ticker")[TARGET_COLUMN].apply(lambda s: s.isna().sum()).eq(1).all()


def test_sample_split_is_not_a_crash(sample_bars):
    """MSFT split 2:1 in February 2003; raw closes halve, split-adjusted ones must not."""
    msft = build_features(sample_bars[sample_bars["ticker"] == "MSFT"])
    around = msft[(msft["date"] >= "2003-02-10") & (msft["date"] <= "2003-02-25")]
    assert around["log_ret_1"].abs().max() < 0.1


def test_ex_dividend_drop_is_not_counted_as_a_loss(make_bars):
    bars = make_bars(("AAA",), days=40)
    bars.loc[20, "dividends"] = 3.0
    bars.loc[20, ["open", "high", "low", "close"]] = bars.loc[19, "close"] - 3.0 + np.array([0, 0.5, -0.5, 0])
    bars.loc[20, "high"] = bars.loc[20, ["open", "close"]].max() + 0.1
    bars.loc[20, "low"] = bars.loc[20, ["open", "close"]].min() - 0.1
    features = build_features(bars)
    assert abs(features.loc[20, "log_ret_1"]) < 1e-9


def test_stale_placeholder_rows_are_dropped(make_bars):
    bars = make_bars(("AAA",), days=40)
    bars.loc[:9, ["open", "high", "low", "close"]] = 10.0
    bars.loc[:9, "volume"] = 0.0
    features = build_features(bars)
    assert len(features) == 30
    assert features["date"].iloc[0] == bars["date"].iloc[10]


def test_the_all_tickers_build_equals_the_per_ticker_pandas_reference(make_bars):
    """The vectorised build (running sums, one filter over all tickers with each restart taken
    off) gives what plain pandas gives one ticker at a time: on tickers of different lengths,
    given in no order, with a flat stretch, an unknown volume and a dividend."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_features import reference_features

    bars = pd.concat(
        [
            make_bars(("AAA",), days=300, seed=1),
            make_bars(("BBB",), days=90, seed=2),
            make_bars(("CCC",), days=200, seed=3),
        ],
        ignore_index=True,
    )
    ccc = bars.index[bars["ticker"] == "CCC"]
    bars.loc[ccc[100:130], ["open", "high", "low", "close"]] = 50.0  # flat, but traded
    bars.loc[ccc[100:130], "volume"] = 1.234e6  # the same volume every day
    bars.loc[ccc[60], "volume"] = np.nan
    bars.loc[ccc[150], "dividends"] = 0.4
    ours = build_features(bars.sample(frac=1, random_state=0))
    reference = reference_features(bars).sort_values(["ticker", "date"]).reset_index(drop=True)
    assert list(ours["ticker"]) == list(reference["ticker"]) and list(ours["date"]) == list(reference["date"])
    np.testing.assert_allclose(
        ours[FEATURE_COLUMNS].to_numpy(float),
        reference[FEATURE_COLUMNS].to_numpy(float),
        rtol=1e-7,
        atol=1e-9,
    )
