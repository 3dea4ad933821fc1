"""Yahoo Finance through yfinance: the only module that imports it.

Traps this adapter handles:
- ``end`` is exclusive in yfinance; stockcast's ``end`` is inclusive, so one day is added.
- ``yf.download`` returns (Price, Ticker) MultiIndex columns, even for one ticker, and a
  DatetimeIndex in the exchange's time zone; both are flattened to the canonical long frame.
- Failures of single tickers in a bulk download are logged by yfinance, not raised; they are
  collected here per ticker, and those worth another try (rate limit, network) are retried
  with exponential backoff.
- Without a route to Yahoo, yfinance returns an empty frame and raises nothing, and against a
  host that never answers a call can hang far past its ``timeout``: every call runs under a
  hard deadline and an all-empty answer is an error.
- Adjustment is off (``auto_adjust=False``) so close (split-adjusted), adjusted close,
  dividends and splits all arrive.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from stockcast.ingest.bars import conform_bars, empty_bars
from stockcast.ingest.sources import Fetched, SourceUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Reasons that say Yahoo could not be reached or asked us to slow down: worth another try,
# and when every ticker fails with one of them, the source as a whole is unavailable.
RETRYABLE_MARKERS = (
    "rate limit",
    "too many requests",
    "429",
    "timed out",
    "timeout",
    "connection",
    "could not resolve",
    "failed to perform",
    "no answer from yahoo",
)
YAHOO_COLUMNS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
    "Dividends": "dividends",
    "Stock Splits": "split_ratio",
}


class DeadlineExceededError(TimeoutError):
    pass


def call_with_deadline(action: Callable[[], T], seconds: float) -> T:
    """Run ``action`` in a daemon thread and give up waiting after ``seconds``.

    A daemon thread, unlike a pool's worker, does not keep the process alive at exit when the
    call it runs never returns.
    """
    answers: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def target() -> None:
        try:
            answers.put((True, action()))
        except BaseException as error:
            answers.put((False, error))

    threading.Thread(target=target, name="yahoo-call", daemon=True).start()
    try:
        succeeded, value = answers.get(timeout=seconds)
    except queue.Empty:
        raise DeadlineExceededError(f"no answer from Yahoo within {seconds:.0f} s") from None
    if succeeded:
        return value
    raise value


class _FailureCollector(logging.Handler):
    """Collects the per-ticker failure lines yfinance logs at the end of a bulk download."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def reason_for(self, ticker: str) -> str | None:
        """Every distinct reason yfinance gave for a ticker, the transport ones first."""
        reasons: list[str] = []
        for message in self.messages:
            if f"'{ticker}'" in message or f"${ticker}:" in message:
                reason = (
                    message.split("reason:", 1)[-1] if "reason:" in message else message.split(":", 1)[-1]
                )
                reason = re.sub(r"\s*See https?://\S+.*$", "", reason.strip())
                if reason and reason not in reasons:
                    reasons.append(reason)
        reasons.sort(key=lambda reason: not _is_retryable(reason))
        return "; ".join(reasons) or None


def download_to_long(frame: pd.DataFrame) -> pd.DataFrame:
    """Flatten ``yf.download``'s wide frame into one row per (ticker, date).

    Columns are (Price, Ticker) pairs; the index holds exchange-local timestamps. Rows that are
    all NaN for a ticker (other tickers' trading days) are dropped.
    """
    if frame is None or frame.empty:
        return empty_bars()
    if not isinstance(frame.columns, pd.MultiIndex):
        raise ValueError("expected yf.download's (Price, Ticker) columns")
    levels = list(frame.columns.names)
    price_level = levels.index("Price") if "Price" in levels else 0
    ticker_level = 1 - price_level
    index = frame.index
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        # A daily bar's stamp is midnight at the exchange; its local date is the session.
        index = index.tz_localize(None)
    frame = frame.set_axis(index.normalize(), axis=0)
    parts = []
    for ticker in frame.columns.get_level_values(ticker_level).unique():
        one = frame.xs(ticker, axis=1, level=ticker_level).rename(columns=YAHOO_COLUMNS)
        one = one.dropna(how="all", subset=[c for c in ("open", "high", "low", "close") if c in one.columns])
        if one.empty:
            continue
        one = one.rename_axis("date").reset_index()
        one.insert(0, "ticker", str(ticker))
        parts.append(one)
    if not parts:
        return empty_bars()
    return pd.concat(parts, ignore_index=True)


def _is_retryable(reason: str) -> bool:
    lowered = reason.lower()
    return any(marker in lowered for marker in RETRYABLE_MARKERS)


class YahooSource:
    name = "yahoo"

    def __init__(
        self,
        timeout_seconds: float = 20.0,
        retries: int = 2,
        cache_dir: str | None = None,
        session: Any = None,
        backoff_seconds: float = 1.0,
    ):
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.cache_dir = cache_dir
        self.session = session
        self.backoff_seconds = backoff_seconds

    def _yfinance(self) -> Any:
        import yfinance as yf

        if self.cache_dir:
            # yfinance keeps time-zone, cookie and ISIN caches; keep them with stockcast's data.
            folder = Path(self.cache_dir) / "yfinance"
            folder.mkdir(parents=True, exist_ok=True)
            yf.set_tz_cache_location(str(folder))  # moves every yfinance cache
        return yf

    def _download(
        self, yf: Any, tickers: Sequence[str], start: date, end: date
    ) -> tuple[pd.DataFrame, _FailureCollector]:
        """One bulk download under a deadline: yfinance's wide frame and its logged failures."""
        collector = _FailureCollector()
        yf_logger = logging.getLogger("yfinance")
        propagate = yf_logger.propagate
        # yfinance logs each failure; collect them instead of letting them reach the console.
        yf_logger.addHandler(collector)
        yf_logger.propagate = False
        try:
            wide = call_with_deadline(
                lambda: yf.download(
                    list(tickers),
                    start=start.isoformat(),
                    end=(end + timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
                    interval="1d",
                    auto_adjust=False,
                    actions=True,
                    group_by="column",
                    progress=False,
                    threads=min(len(tickers), 8),
                    timeout=self.timeout_seconds,
                    session=self.session,
                    multi_level_index=True,
                ),
                # yfinance fetches the time zone first, then the bars: allow both.
                seconds=self.timeout_seconds * 2 + 1,
            )
        finally:
            yf_logger.removeHandler(collector)
            yf_logger.propagate = propagate
        return wide, collector

    def fetch(self, tickers: Sequence[str], start: date, end: date) -> Fetched:
        yf = self._yfinance()
        pending = list(tickers)
        frames: list[pd.DataFrame] = []
        failures: dict[str, str] = {}
        for attempt in range(self.retries + 1):
            try:
                wide, collector = self._download(yf, pending, start, end)
            except DeadlineExceededError as error:
                bars, failures_now = empty_bars(), dict.fromkeys(pending, str(error))
            except Exception as error:
                bars, failures_now = empty_bars(), dict.fromkeys(pending, f"{type(error).__name__}: {error}")
            else:
                bars = download_to_long(wide)
                present = set(bars["ticker"].unique())
                failures_now = {
                    ticker: collector.reason_for(ticker)
                    or "Yahoo returned no bars (unknown or delisted symbol?)"
                    for ticker in pending
                    if ticker not in present
                }
            frames.append(bars)
            failures.update(failures_now)
            for ticker in bars["ticker"].unique():
                failures.pop(ticker, None)
            pending = [ticker for ticker, reason in failures_now.items() if _is_retryable(reason)]
            if not pending or attempt == self.retries:
                break
            wait = self.backoff_seconds * 2**attempt
            log.info("Yahoo: retrying %s in %.0f s: %s", ", ".join(pending), wait, failures_now[pending[0]])
            time.sleep(wait)
        bars = pd.concat([frame for frame in frames if not frame.empty] or [empty_bars()], ignore_index=True)
        if bars.empty and failures and all(_is_retryable(reason) for reason in failures.values()):
            first_reason = next(iter(failures.values())).split("; ")[0]
            tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
            raise SourceUnavailableError(f"Yahoo Finance unreachable ({tries}): {first_reason}")
        return Fetched(conform_bars(bars, self.name), failures)
