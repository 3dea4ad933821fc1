"""Synthetic price series with known structure, shared by the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockcast.features.build import add_target, build_features, complete_rows, for_horizon


def synthetic_bars(
    tickers: tuple[str, ...] = ("AAA", "BBB"),
    days: int = 600,
    start: str = "2015-01-02",
    seed: int = 7,
    drift: float = 0.0003,
    volatility: float = 0.015,
) -> pd.DataFrame:
    """Random-walk daily bars on business days that pass every validation rule."""
    rng = np.random.default_rng(seed)
    frames = []
    dates = pd.bdate_range(start, periods=days)
    for ticker in tickers:
        log_returns = rng.normal(drift, volatility, days)
        close = 50.0 * np.exp(np.cumsum(log_returns))
        open_ = close * np.exp(rng.normal(0, 0.003, days))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, days))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, days))
        frames.append(
            pd.DataFrame(
                {
                    "ticker": ticker,
                    "date": dates,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "adj_close": close,
                    "volume": rng.integers(1_000_000, 5_000_000, days).astype(float),
                    "dividends": 0.0,
                    "split_ratio": 1.0,
                    "source": "synthetic",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def with_log_returns(bars: pd.DataFrame, log_returns: np.ndarray, start: float = 40.0) -> pd.DataFrame:
    """The same dates with closes following ``log_returns`` (flat open, a narrow range)."""
    close = start * np.exp(np.cumsum(log_returns))
    shaped = bars.copy()
    shaped["open"], shaped["close"], shaped["high"], shaped["low"] = (
        close,
        close,
        close * 1.004,
        close * 0.996,
    )
    return shaped


def ar_log_returns(phis: np.ndarray, seed: int, noise: float = 0.01) -> np.ndarray:
    """Autoregressive daily returns whose coefficient on yesterday may change day by day."""
    rng = np.random.default_rng(seed)
    log_returns = np.zeros(len(phis))
    for day in range(1, len(phis)):
        log_returns[day] = phis[day] * log_returns[day - 1] + rng.normal(0, noise)
    return log_returns


def autocorrelated_bars(days: int, phi: float, seed: int = 5) -> pd.DataFrame:
    """One ticker, AAA, whose returns carry ``phi`` of yesterday's: momentum when positive."""
    return with_log_returns(
        synthetic_bars(("AAA",), days=days, seed=seed), ar_log_returns(np.full(days, phi), seed)
    )


def regime_flip_bars(days: int = 600, flip_at: int = 440, seed: int = 9) -> pd.DataFrame:
    """Momentum, then reversal: a model that learned momentum loses to naive after the flip."""
    phis = np.where(np.arange(days) < flip_at, 0.7, -0.7)
    return with_log_returns(synthetic_bars(("AAA",), days=days, seed=seed), ar_log_returns(phis, seed))


def labelled(bars: pd.DataFrame, horizon: int = 1) -> pd.DataFrame:
    """Complete feature rows with their label ``horizon`` sessions ahead in TARGET_COLUMN: what a
    backtest at that horizon consumes."""
    rows = complete_rows(add_target(build_features(bars), [horizon]))
    return for_horizon(rows, horizon)
