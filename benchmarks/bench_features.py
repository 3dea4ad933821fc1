"""Feature engineering throughput over the shared S&P 500 file, against two references.

- The per-ticker loop: the straightforward way, one ticker and one indicator at a time with
  pandas. Both produce the same numbers (checked here). Goal: stockcast >= 30x its rows/s.
- The pass floor: one memory pass per output feature (read a column, write a feature column),
  the least any implementation must do. Goal: stockcast within 10x of it (ratio >= 0.1).

    .venv/bin/python benchmarks/bench_features.py [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from figures import Figure, emit

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


def pass_floor(bars: pd.DataFrame) -> np.ndarray:
    """One read of an input column and one write of an output column per feature."""
    close = bars["close"].to_numpy(np.float64)
    block = np.empty((len(FEATURE_COLUMNS), len(close)))
    for row in block:
        np.multiply(close, 1.0, out=row)
    return block


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if not SHARED_FILE.exists():
        print(f"skipped: {SHARED_FILE} not found (the shared data folder sits beside the project)")
        return 0
    bars = conform_bars(pd.read_parquet(SHARED_FILE), "file")
    rows = len(bars)
    build_features(bars)  # first call pays for imports and allocator warm-up
    ours_seconds, ours = best_of(args.repeat, lambda: build_features(bars))
    floor_seconds, _ = best_of(args.repeat, lambda: pass_floor(bars))
    reference_seconds, reference = best_of(min(args.repeat, 3), lambda: reference_features(bars))
    ours = ours.sort_values(["ticker", "date"]).reset_index(drop=True)
    reference = reference.sort_values(["ticker", "date"]).reset_index(drop=True)
    same = np.allclose(
        ours[FEATURE_COLUMNS].to_numpy(float),
        reference[FEATURE_COLUMNS].to_numpy(float),
        equal_nan=True,
        atol=1e-9,
    )
    print(
        f"feature engineering over {SHARED_FILE.name}: {rows:,} bars, {bars['ticker'].nunique()} tickers, "
        f"{len(FEATURE_COLUMNS)} features, best of {args.repeat}; identical output: {same}"
    )
    print(
        f"  stockcast (vectorised, all tickers)  {ours_seconds * 1000:9.1f} ms  {rows / ours_seconds:12,.0f} rows/s"
    )
    print(
        f"  per-ticker pandas loop               {reference_seconds * 1000:9.1f} ms  {rows / reference_seconds:12,.0f} rows/s"
    )
    print(
        f"  pass floor (1 pass per feature)      {floor_seconds * 1000:9.1f} ms  {rows / floor_seconds:12,.0f} rows/s"
    )

    def rate(seconds: float) -> str:
        return f"{rows / seconds / 1e6:.2f} M rows/s"

    emit(
        [
            Figure(
                "Feature engineering",
                "rows/s vs the per-ticker pandas loop",
                rate(ours_seconds),
                rate(reference_seconds),
                reference_seconds / ours_seconds,
                30.0,
                "" if same else "OUTPUTS DIFFER",
            ),
            Figure(
                "Feature engineering",
                "rows/s vs the pass floor (one memory pass per feature)",
                rate(ours_seconds),
                rate(floor_seconds),
                floor_seconds / ours_seconds,
                0.1,
            ),
        ],
        args.json,
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
