"""Technical features: pure, vectorised over all tickers at once, causal by construction.

The value at (ticker, t) is computed from that ticker's bars dated t or earlier, nothing later.
Every feature is a ratio or a return, so it does not depend on the price level and therefore
not on how far back splits or dividends were adjusted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockcast.ingest.bars import stale_mask

RETURN_LAGS = (1, 2, 5, 10, 20)
# Single daily log returns of the days before t: what autoregressive models read.
DAILY_LAGS = 10
MA_WINDOWS = (5, 10, 20, 50)
VOLATILITY_WINDOWS = (5, 20)
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
VOLUME_WINDOW = 20

FEATURE_COLUMNS: list[str] = [
    *(f"log_ret_{lag}" for lag in RETURN_LAGS),
    "ret_1",
    "ret_5",
    *(f"ret_lag_{lag}" for lag in range(1, DAILY_LAGS)),
    *(f"ma_ratio_{window}" for window in MA_WINDOWS),
    *(f"volatility_{window}" for window in VOLATILITY_WINDOWS),
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "volume_z_20",
    "range_pct",
    "day_of_week",
]
# Closes a series needs before every feature has a value: the longest window plus the one
# previous close a return needs.
MIN_HISTORY = max(*MA_WINDOWS, MACD_SLOW + MACD_SIGNAL) + 1
TARGET_COLUMN = "target_log_return"


def _rolling_within(values: pd.Series, position: np.ndarray, window: int, how: str) -> pd.Series:
    """A rolling statistic over a frame sorted by (ticker, date), blanked where the window
    would reach back into the previous ticker's rows."""
    rolled = getattr(values.rolling(window, min_periods=window), how)()
    return rolled.where(position >= window - 1)


def _ewm_within(
    values: pd.Series,
    keys: pd.Series,
    span: float | None = None,
    alpha: float | None = None,
    min_periods: int = 0,
) -> pd.Series:
    grouped = values.groupby(keys, sort=False)
    smoothed = grouped.ewm(span=span, alpha=alpha, adjust=False, min_periods=min_periods).mean()
    return smoothed.reset_index(level=0, drop=True).sort_index()


def daily_log_returns(bars: pd.DataFrame) -> pd.Series:
    """Log total return per day: a cash dividend paid on the ex-date counts as return, so an
    ex-dividend drop is not mistaken for a loss."""
    previous_close = bars.groupby("ticker", sort=False)["close"].shift(1)
    return np.log((bars["close"] + bars["dividends"].fillna(0.0)) / previous_close)


def build_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Features for every (ticker, date) of ``bars``; rows without full history carry NaN.

    Stale placeholder bars (no volume, flat price) are dropped first: they are not trading.
    """
    clean = bars.loc[~stale_mask(bars)].sort_values(["ticker", "date"], kind="stable")
    clean = clean.reset_index(drop=True)
    keys = clean["ticker"]
    position = clean.groupby("ticker", sort=False).cumcount().to_numpy()
    log_return = daily_log_returns(clean)
    # A total-return index per ticker; ratios of it are unaffected by where it starts.
    growth = log_return.fillna(0.0).groupby(keys, sort=False).cumsum()
    index_level = np.exp(growth)

    out = pd.DataFrame({"ticker": keys, "date": clean["date"], "close": clean["close"]})
    cumulative = log_return.fillna(0.0).groupby(keys, sort=False).cumsum()
    for lag in RETURN_LAGS:
        # Sum of the last `lag` daily log returns; the first return of a ticker is undefined.
        summed = cumulative - cumulative.groupby(keys, sort=False).shift(lag).fillna(0.0)
        out[f"log_ret_{lag}"] = summed.where(position >= lag)
    out["ret_1"] = np.expm1(out["log_ret_1"])
    out["ret_5"] = np.expm1(out["log_ret_5"])
    for lag in range(1, DAILY_LAGS):
        # The return of the day `lag` sessions before t; the same ticker's rows only.
        out[f"ret_lag_{lag}"] = log_return.groupby(keys, sort=False).shift(lag).where(position > lag)
    for window in MA_WINDOWS:
        mean = _rolling_within(index_level, position, window, "mean")
        out[f"ma_ratio_{window}"] = index_level / mean - 1.0
    for window in VOLATILITY_WINDOWS:
        volatility = _rolling_within(log_return, position, window, "std")
        out[f"volatility_{window}"] = volatility.where(position >= window)

    gains = log_return.clip(lower=0.0).fillna(0.0)
    losses = (-log_return).clip(lower=0.0).fillna(0.0)
    average_gain = _ewm_within(gains, keys, alpha=1 / RSI_PERIOD)
    average_loss = _ewm_within(losses, keys, alpha=1 / RSI_PERIOD)
    total = average_gain + average_loss
    rsi = 100.0 * average_gain / total.where(total > 0)
    out["rsi_14"] = rsi.fillna(50.0).where(position >= RSI_PERIOD)

    fast = _ewm_within(index_level, keys, span=MACD_FAST)
    slow = _ewm_within(index_level, keys, span=MACD_SLOW)
    macd = (fast - slow) / index_level
    signal = _ewm_within(macd, keys, span=MACD_SIGNAL)
    ready = position >= MACD_SLOW + MACD_SIGNAL
    out["macd"] = macd.where(ready)
    out["macd_signal"] = signal.where(ready)
    out["macd_hist"] = (macd - signal).where(ready)

    log_volume = np.log1p(clean["volume"].astype("float64"))
    volume_mean = _rolling_within(log_volume, position, VOLUME_WINDOW, "mean")
    volume_std = _rolling_within(log_volume, position, VOLUME_WINDOW, "std")
    out["volume_z_20"] = ((log_volume - volume_mean) / volume_std.where(volume_std > 0)).fillna(0.0)
    out["volume_z_20"] = out["volume_z_20"].where(position >= VOLUME_WINDOW - 1)
    out["range_pct"] = (clean["high"] - clean["low"]) / clean["close"]
    out["day_of_week"] = clean["date"].dt.dayofweek.astype("float64")
    return out


def add_target(features: pd.DataFrame) -> pd.DataFrame:
    """The label: log of the next session's close over today's. NaN on each ticker's last day.

    This is the one place that looks forward, and it only ever produces the label.
    """
    labelled = features.copy()
    next_close = labelled.groupby("ticker", sort=False)["close"].shift(-1)
    labelled[TARGET_COLUMN] = np.log(next_close / labelled["close"])
    return labelled


def complete_rows(features: pd.DataFrame) -> pd.DataFrame:
    """Rows whose every feature has a value."""
    return features.dropna(subset=FEATURE_COLUMNS).reset_index(drop=True)
