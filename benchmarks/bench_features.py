"""Feature engineering throughput over the shared S&P 500 file, against a per-ticker reference.

The reference is the straightforward way: loop over tickers and compute each indicator with
pandas on that ticker's frame. Both produce the same numbers (checked here); the figure is rows
of bars turned into features per second.

    .venv/bin/python benchmarks/bench_features.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from stockcast.features.build import FEATURE_COLUMNS, build_features
from stockcast.ingest.bars import conform_bars, stale_mask

SHARED_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sp500_2018_2023.parquet"


def reference_features(bars: pd.DataFrame) -> pd.DataFrame:
    """One ticker at a time, one indicator at a time: the obvious pandas implementation."""
    frames = []
    for ticker, group in bars.loc[~stale_mask(bars)].groupby("ticker", sort=True):
        one = group.sort_values("date").reset_index(drop=True)
        out = pd.DataFrame({"ticker": ticker, "date": one["date"], "close": one["close"]})
        log_return = np.log((one["close"] + one["dividends"]) / one["close"].shift(1))
        for lag in (1, 2, 5, 10, 20):
            out[f"log_ret_{lag}"] = log_return.rolling(lag).sum()
        out["ret_1"] = np.expm1(out["log_ret_1"])
        out["ret_5"] = np.expm1(out["log_ret_5"])
        for lag in range(1, 10):
            out[f"ret_lag_{lag}"] = log_return.shift(lag)
        level = np.exp(log_return.fillna(0).cumsum())
        for window in (5, 10, 20, 50):
            out[f"ma_ratio_{window}"] = level / level.rolling(window).mean() - 1
        for window in (5, 20):
            out[f"volatility_{window}"] = log_return.rolling(window).std()
        gain = log_return.clip(lower=0).fillna(0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-log_return).clip(lower=0).fillna(0).ewm(alpha=1 / 14, adjust=False).mean()
        rsi = (100 * gain / (gain + loss).where(gain + loss > 0)).fillna(50.0)
        out["rsi_14"] = rsi.where(out.index >= 14)
        macd = (level.ewm(span=12, adjust=False).mean() - level.ewm(span=26, adjust=False).mean()) / level
        signal = macd.ewm(span=9, adjust=False).mean()
        ready = out.index >= 35
        out["macd"], out["macd_signal"], out["macd_hist"] = (
            macd.where(ready),
            signal.where(ready),
            (macd - signal).where(ready),
        )
        log_volume = np.log1p(one["volume"])
        z = (log_volume - log_volume.rolling(20).mean()) / log_volume.rolling(20).std()
        out["volume_z_20"] = z.fillna(0).where(out.index >= 19)
        out["range_pct"] = (one["high"] - one["low"]) / one["close"]
        out["day_of_week"] = one["date"].dt.dayofweek.astype(float)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def best_of(repeat: int, action) -> tuple[float, pd.DataFrame]:
    timings, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - start)
    return min(timings), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not SHARED_FILE.exists():
        print(f"skipped: {SHARED_FILE} not found (the shared data folder sits beside the project)")
        return 0
    bars = conform_bars(pd.read_parquet(SHARED_FILE), "file")
    rows = len(bars)
    ours_seconds, ours = best_of(args.repeat, lambda: build_features(bars))
    reference_seconds, reference = best_of(args.repeat, lambda: reference_features(bars))
    ours = ours.sort_values(["ticker", "date"]).reset_index(drop=True)
    reference = reference.sort_values(["ticker", "date"]).reset_index(drop=True)
    same = np.allclose(
        ours[FEATURE_COLUMNS].to_numpy(float),
        reference[FEATURE_COLUMNS].to_numpy(float),
        equal_nan=True,
        atol=1e-9,
    )
    print(
        f"feature engineering over {SHARED_FILE.name}: {rows:,} bars, {bars['ticker'].nunique()} tickers, best of {args.repeat}"
    )
    print(
        f"  stockcast (vectorised, all tickers)  {ours_seconds:8.3f} s  {rows / ours_seconds:12,.0f} rows/s"
    )
    print(
        f"  reference (per-ticker pandas loop)    {reference_seconds:8.3f} s  {rows / reference_seconds:12,.0f} rows/s"
    )
    print(
        f"  speed-up                              {reference_seconds / ours_seconds:8.1f} x   identical output: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
