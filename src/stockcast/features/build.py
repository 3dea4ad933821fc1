"""Technical features: pure, vectorised over all tickers at once, causal by construction.

The value at (ticker, t) is computed from that ticker's bars dated t or earlier, nothing later.
Every feature is a ratio or a return, so it does not depend on the price level and therefore
not on how far back splits or dividends were adjusted.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

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
CHUNK_ROWS = 65_536


class _Tickers:
    """Many tickers' series laid end to end, sorted by (ticker, date): where each starts, and
    the per-ticker operations the features need, each one vectorised pass over all of them.

    A result at a row comes from that row and the rows before it in the same ticker; the first
    rows of each ticker, whose window would reach into the previous ticker, are set to NaN
    through index lists (a few per ticker) rather than a mask over every row.
    """

    def __init__(self, starts: np.ndarray, n: int):
        self.n = n
        self.starts = starts
        self.counts = np.diff(np.append(starts, n))
        self._heads: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._decays: dict[float, np.ndarray] = {}

    def per_row(self, per_ticker: np.ndarray) -> np.ndarray:
        return np.repeat(per_ticker, self.counts)

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each ticker's first ``rows`` rows (fewer if it is shorter): their indices, their
        positions within the ticker and the ticker each belongs to."""
        if rows not in self._heads:
            offsets = np.arange(rows)
            inside = offsets < self.counts[:, None]
            indices = (self.starts[:, None] + offsets)[inside]
            owners = np.broadcast_to(np.arange(len(self.starts))[:, None], inside.shape)[inside]
            self._heads[rows] = (indices, np.broadcast_to(offsets, inside.shape)[inside], owners)
        return self._heads[rows]

    def blank_head(self, values: np.ndarray, rows: int) -> np.ndarray:
        """NaN in each ticker's first ``rows`` rows."""
        values[self.head(rows)[0]] = np.nan
        return values

    def shift(self, values: np.ndarray, lag: int, out: np.ndarray, blank: int | None = None) -> np.ndarray:
        """The value ``lag`` rows earlier in the same ticker; NaN in the first ``blank``
        (default ``lag``) rows of each ticker."""
        out[lag:] = values[:-lag]
        out[:lag] = np.nan
        return self.blank_head(out, lag if blank is None else blank)

    def ewm(self, values: np.ndarray, alpha: float) -> np.ndarray:
        """Exponentially weighted mean, y[0] = x[0], y[t] = (1 - alpha) y[t-1] + alpha x[t],
        restarted at each ticker (values without NaN).

        One pass runs over all tickers end to end, so each ticker starts from the previous
        one's last value; the two recursions differ at a ticker's first row by d, and k rows
        later by d (1 - alpha)^k, which is then taken off. Past the rows where that has decayed
        below float64's resolution nothing is left to take off.
        """
        through = pd.Series(values, copy=False).ewm(alpha=alpha, adjust=False).mean().to_numpy()
        rows = min(int(np.ceil(np.log(1e-18) / np.log1p(-alpha))), int(self.counts.max()))
        indices, offsets, owners = self.head(rows)
        if alpha not in self._decays:
            self._decays[alpha] = np.exp(offsets * np.log1p(-alpha))
        difference = values[self.starts] - through[self.starts]
        through[indices] += difference[owners] * self._decays[alpha]
        return through


class _Rolling:
    """Rolling means and standard deviations of one series over windows of any length, from
    running sums computed once. The values are centred on their ticker's first value, which
    keeps the running sums small; not on its mean, which would let later bars move earlier
    days' features in the last digits (the causality property test found it). Windows holding
    a NaN are NaN."""

    def __init__(self, tickers: _Tickers, values: np.ndarray):
        self.tickers = tickers
        self.values = values
        missing = np.isnan(values)
        self.missing_running: np.ndarray | None = None
        if missing.any():
            values = np.where(missing, 0.0, values)
            self.missing_running = self._running(missing.astype(np.float64))
        positions = np.where(missing, tickers.n, np.arange(tickers.n))
        first_present = np.minimum.reduceat(positions, tickers.starts)
        anchors = np.where(first_present < tickers.n, values[np.minimum(first_present, tickers.n - 1)], 0.0)
        self.anchors = tickers.per_row(anchors)
        self.centred = values - self.anchors
        if self.missing_running is not None:
            self.centred[missing] = 0.0
        self.running = self._running(self.centred)
        self._squares: np.ndarray | None = None
        self._changes: np.ndarray | None = None

    def _running(self, values: np.ndarray) -> np.ndarray:
        running = np.zeros(self.tickers.n + 1)
        np.cumsum(values, out=running[1:])
        return running

    def _sums(self, running: np.ndarray, window: int) -> np.ndarray:
        n = self.tickers.n
        sums = np.empty(n)
        sums[: window - 1] = np.nan
        if n >= window:
            np.subtract(running[window:], running[: n - window + 1], out=sums[window - 1 :])
        return sums

    def _finish(self, result: np.ndarray, window: int, first: int) -> np.ndarray:
        if self.missing_running is not None:
            result[self._sums(self.missing_running, window) > 0] = np.nan
        return self.tickers.blank_head(result, first)

    def mean(self, window: int) -> np.ndarray:
        result = self._sums(self.running, window)
        result /= window
        result += self.anchors
        return self._finish(result, window, window - 1)

    def std(self, window: int, first: int | None = None) -> np.ndarray:
        """Sample standard deviation (ddof=1); exactly 0 for a constant window."""
        if self._squares is None:
            self._squares = self._running(self.centred * self.centred)
            changes = np.zeros(self.tickers.n)
            np.not_equal(self.values[1:], self.values[:-1], out=changes[1:], casting="unsafe")
            self._changes = self._running(changes)
        assert self._changes is not None
        sums = self._sums(self.running, window)
        variance = self._sums(self._squares, window)
        variance -= sums * sums / window
        variance /= window - 1
        np.maximum(variance, 0.0, out=variance)
        # A constant window would leave rounding noise: found exactly, by counting changes.
        variance[self._sums(self._changes, window - 1) == 0] = 0.0
        return self._finish(np.sqrt(variance, out=variance), window, window - 1 if first is None else first)


def _sorted_columns(bars: pd.DataFrame, names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The named columns as arrays, without stale placeholder rows, sorted by (ticker, date),
    and where each ticker starts. Input already in that order (as the store returns it) is not
    sorted again."""
    keep = ~stale_mask(bars).to_numpy()
    columns = {name: bars[name].to_numpy() for name in names}
    if not keep.all():
        columns = {name: values[keep] for name, values in columns.items()}
    tickers = columns["ticker"]
    days = columns["date"].astype("datetime64[ns]").view(np.int64)
    boundaries = np.flatnonzero(tickers[1:] != tickers[:-1]) + 1
    increasing = days[1:] >= days[:-1]
    increasing[boundaries - 1] = True  # a new ticker may start at any date
    firsts = tickers[np.append(0, boundaries)]
    in_order = bool(increasing.all()) and all(a < b for a, b in itertools.pairwise(firsts))
    if not in_order:
        codes, _ = pd.factorize(tickers, sort=True)
        order = np.lexsort((days, codes))
        columns = {name: values[order] for name, values in columns.items()}
        codes = codes[order]
        boundaries = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return columns, np.append(0, boundaries).astype(np.int64)


def _returns(
    tickers: _Tickers, close: np.ndarray, dividends: np.ndarray, row: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns over several lags and the single daily returns before t. Gives back the daily
    log returns, the same with a ticker's first (undefined) as 0, and their running sum."""
    n = tickers.n
    log_return = np.nan_to_num(dividends, nan=0.0)
    log_return += close
    log_return /= tickers.shift(close, 1, np.empty(n))
    np.log(log_return, out=log_return)
    known_return = np.nan_to_num(log_return, nan=0.0)
    # Sums of daily log returns over any lag are differences of their running sum.
    running = np.cumsum(known_return)
    for lag in RETURN_LAGS:
        summed = row[f"log_ret_{lag}"]
        np.subtract(running[lag:], running[:-lag], out=summed[lag:])
        summed[:lag] = np.nan
        tickers.blank_head(summed, lag)
    np.expm1(row["log_ret_1"], out=row["ret_1"])
    np.expm1(row["log_ret_5"], out=row["ret_5"])
    for lag in range(1, DAILY_LAGS):
        # The return of the day `lag` sessions before t; the same ticker's rows only.
        tickers.shift(log_return, lag, row[f"ret_lag_{lag}"], blank=lag + 1)
    return log_return, known_return, running


def _trend(
    tickers: _Tickers, returns_: tuple[np.ndarray, np.ndarray, np.ndarray], row: dict[str, np.ndarray]
) -> None:
    """Moving-average ratios, volatility, RSI and MACD of a total-return index per ticker (its
    ratios are unaffected by where it starts)."""
    log_return, known_return, running = returns_
    index_level = running - tickers.per_row(running[tickers.starts])
    np.exp(index_level, out=index_level)
    level = _Rolling(tickers, index_level)
    for window in MA_WINDOWS:
        ratio = row[f"ma_ratio_{window}"]
        np.divide(index_level, level.mean(window), out=ratio)
        ratio -= 1.0
    returns = _Rolling(tickers, log_return)
    for window in VOLATILITY_WINDOWS:
        row[f"volatility_{window}"][:] = returns.std(window, first=window)

    average_gain = tickers.ewm(np.clip(known_return, 0.0, None), 1 / RSI_PERIOD)
    total = tickers.ewm(np.clip(-known_return, 0.0, None), 1 / RSI_PERIOD)
    total += average_gain
    rsi = row["rsi_14"]
    np.divide(average_gain, total, out=rsi)
    rsi *= 100.0
    rsi[~(total > 0)] = 50.0
    tickers.blank_head(rsi, RSI_PERIOD)

    macd = tickers.ewm(index_level, 2 / (MACD_FAST + 1))
    macd -= tickers.ewm(index_level, 2 / (MACD_SLOW + 1))
    macd /= index_level
    row["macd"][:] = macd
    row["macd_signal"][:] = tickers.ewm(macd, 2 / (MACD_SIGNAL + 1))
    np.subtract(row["macd"], row["macd_signal"], out=row["macd_hist"])
    for name in ("macd", "macd_signal", "macd_hist"):
        tickers.blank_head(row[name], MACD_SLOW + MACD_SIGNAL)


def _volume(tickers: _Tickers, volume: np.ndarray, row: dict[str, np.ndarray]) -> None:
    """How unusual the day's traded volume is against the last 20 sessions (log scale)."""
    logged = _Rolling(tickers, np.log1p(volume))
    spread = logged.std(VOLUME_WINDOW)
    z = row["volume_z_20"]
    np.subtract(logged.values, logged.mean(VOLUME_WINDOW), out=z)
    z /= spread
    z[~(spread > 0)] = 0.0  # no spread, or a window with an unknown volume
    tickers.blank_head(z, VOLUME_WINDOW - 1)


def _chunks(starts: np.ndarray, n: int, rows: int) -> list[tuple[int, int]]:
    """Runs of whole tickers (first, last index into ``starts``) of about ``rows`` rows each."""
    ends = np.append(starts[1:], n)
    chunks, first = [], 0
    for index in range(len(starts)):
        if ends[index] - starts[first] >= rows or index == len(starts) - 1:
            chunks.append((first, index + 1))
            first = index + 1
    return chunks


def build_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Features for every (ticker, date) of ``bars``; rows without full history carry NaN.

    Stale placeholder bars (no volume, flat price) are dropped first: they are not trading.
    Each feature is written once, into one block of memory that becomes the frame's columns.
    """
    names = ["ticker", "date", "close", "high", "low", "volume", "dividends"]
    if bars.empty:
        return pd.DataFrame(
            {**{name: bars[name] for name in names[:3]}, **dict.fromkeys(FEATURE_COLUMNS, np.nan)}
        )
    data, starts = _sorted_columns(bars, names)
    n = len(data["close"])
    block = np.empty((len(FEATURE_COLUMNS), n))
    close = data["close"].astype(np.float64, copy=False)
    numbers = {
        name: data[name].astype(np.float64, copy=False) for name in ("high", "low", "volume", "dividends")
    }
    # A few dozen tickers at a time: each operation's arrays then stay in the processor's cache
    # between one operation and the next instead of streaming through memory.
    for first, last in _chunks(starts, n, CHUNK_ROWS):
        lo, hi = starts[first], (starts[last] if last < len(starts) else n)
        tickers = _Tickers(starts[first:last] - lo, hi - lo)
        row = {name: block[index, lo:hi] for index, name in enumerate(FEATURE_COLUMNS)}
        part = {name: values[lo:hi] for name, values in numbers.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            _trend(tickers, _returns(tickers, close[lo:hi], part["dividends"], row), row)
            _volume(tickers, part["volume"], row)
            np.subtract(part["high"], part["low"], out=row["range_pct"])
            row["range_pct"] /= close[lo:hi]
    row = {name: block[index] for index, name in enumerate(FEATURE_COLUMNS)}
    days = data["date"].astype("datetime64[D]").view(np.int64)
    row["day_of_week"][:] = (days + 3) % 7  # 1970-01-01 was a Thursday

    out = pd.DataFrame(block.T, columns=FEATURE_COLUMNS, copy=False)
    out.insert(0, "close", close)
    out.insert(0, "date", data["date"])
    out.insert(0, "ticker", data["ticker"])
    return out


def target_column(horizon: int) -> str:
    """The label column of a horizon: ``target_log_return`` at one session, else with ``_h{h}``."""
    return TARGET_COLUMN if horizon == 1 else f"{TARGET_COLUMN}_h{horizon}"


def add_target(features: pd.DataFrame, horizons: Sequence[int] = (1,)) -> pd.DataFrame:
    """The labels: log of the close ``h`` sessions later over today's, one column per horizon
    (``target_column``). NaN on each ticker's last ``h`` rows.

    This is the one place that looks forward, and it only ever produces labels. ``features``
    must hold each ticker's consecutive sessions (before incomplete rows are dropped), so that
    ``h`` rows later is ``h`` sessions later.
    """
    labelled = features.copy()
    closes = labelled.groupby("ticker", sort=False)["close"]
    for horizon in horizons:
        labelled[target_column(horizon)] = np.log(closes.shift(-horizon) / labelled["close"])
    return labelled


def for_horizon(labelled: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """The rows of one ticker labelled at ``horizon``, with that label in ``TARGET_COLUMN``:
    what the backtests, the final fit and the tuner read, whatever the horizon."""
    column = target_column(horizon)
    rows = labelled.loc[labelled[column].notna()]
    if horizon != 1:
        rows = rows.assign(**{TARGET_COLUMN: rows[column]})
    return rows.reset_index(drop=True)


def complete_rows(features: pd.DataFrame) -> pd.DataFrame:
    """Rows whose every feature has a value."""
    return features.dropna(subset=FEATURE_COLUMNS).reset_index(drop=True)
