"""Serving a forecast: online features (or what-if closes) -> champion -> log -> answer.

A forecast is a function of the champion's version and the feature vector, so the API
computes it once per (ticker, version, online vector) and keeps it: the hot path of
``GET /predict/{ticker}`` is a dictionary lookup, a fresh request id and the forecast-log
commit it waits for. A new champion version misses the cache by construction.

The online store is read again once a kept forecast is ``feature_refresh_seconds`` old. One
read per ticker is in flight at a time, however many requests arrive (they share it), and
within a second window of the same length the kept forecast is served while the read runs
behind (stale-while-revalidate), so no request waits for it under steady traffic. Without that,
every concurrent request missed together each window and queued for its own read: the p99
under load was 5x the bare endpoint's. A read that fails (stale or missing features) drops the
kept forecast, so the next request reads itself and answers with why.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from stockcast.failpoints import failpoint
from stockcast.serving.schemas import ForecastResponse, Interval, ModelRef
from stockcast.serving.state import LoadedChampion, ServingState

if TYPE_CHECKING:
    import pandas as pd

    from stockcast.forecasting.predict import Forecast

LOG_FAILED = "the forecast could not be logged, so it is not served; try again"


@dataclass(frozen=True)
class Prepared:
    """A forecast ready to serve, with the feature values it was made from."""

    forecast: Forecast
    features: dict[str, float]
    fetched_at: float

    def not_finite(self) -> list[str]:
        """The parts of the forecast (and the features it was made from) that are not finite
        numbers: such a forecast is neither served nor logged (JSON has no infinity, and a
        bound of null or a price past float range answers nothing)."""
        forecast = self.forecast
        parts = {
            "predicted_close": forecast.predicted_close,
            "interval.lower": forecast.lower,
            "interval.upper": forecast.upper,
        }
        for level, lower, upper in forecast.intervals:
            parts |= {f"intervals[{level:g}].lower": lower, f"intervals[{level:g}].upper": upper}
        parts |= {f"features.{name}": value for name, value in self.features.items()}
        return [name for name, value in parts.items() if not math.isfinite(value)]


class ForecastCache:
    def __init__(
        self, state: ServingState, max_age_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.state = state
        self.max_age = max_age_seconds
        self.clock = clock
        self._entries: dict[tuple[str, str], Prepared] = {}
        self._restored: dict[tuple[str, str], Prepared] = {}
        self.warm = False  # every ticker has been computed once by this process
        self.reads = 0  # online-store reads made for requests (the warm-up's not counted)
        self._lock = threading.Lock()
        self._reading: dict[tuple[str, str], Future[Prepared]] = {}
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="forecast-read")

    def get(self, ticker: str, loaded: LoadedChampion) -> Prepared | None:
        """The kept forecast of this champion version, unless it is older than the limit (a
        look that starts no read; requests go through ``lookup``).
        Until this process has warmed up, a forecast restored from the last run's snapshot
        stands in, so requests do not wait for the feature store to open."""
        key = (ticker, loaded.version)
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.fetched_at <= self.max_age:
            return entry
        if not self.warm:
            return self._restored.get(key)
        return None

    def lookup(self, ticker: str, loaded: LoadedChampion) -> Prepared | Future[Prepared]:
        """What a request serves: the kept forecast while it is fresh, or within the second
        window while one read refreshes it behind; else the read in flight, shared."""
        entry = self._entries.get((ticker, loaded.version))
        if entry is not None:
            age = self.clock() - entry.fetched_at
            if age <= self.max_age:
                return entry
            if age <= 2 * self.max_age:
                self.read(ticker, loaded)
                return entry
        if not self.warm:
            restored = self._restored.get((ticker, loaded.version))
            if restored is not None:
                return restored
        return self.read(ticker, loaded)

    def read(self, ticker: str, loaded: LoadedChampion) -> Future[Prepared]:
        """Start a read of the online store for this champion version, or join the one running."""
        key = (ticker, loaded.version)
        with self._lock:
            running = self._reading.get(key)
            if running is None:
                running = self._readers.submit(self._refresh, ticker, loaded)
                self._reading[key] = running
                self.reads += 1
        return running

    def _refresh(self, ticker: str, loaded: LoadedChampion) -> Prepared:
        """One read; settled before its waiters wake, so the next lookup sees its outcome."""
        key = (ticker, loaded.version)
        try:
            failpoint("serving.forecast_read")
            return self.compute(ticker, loaded)
        except BaseException:
            with self._lock:  # what is kept would hide why the read failed
                self._entries.pop(key, None)
            raise
        finally:
            with self._lock:
                del self._reading[key]

    def close(self) -> None:
        self._readers.shutdown(wait=False, cancel_futures=True)

    def export(self) -> dict[tuple[str, str], Prepared]:
        return dict(self._entries) or dict(self._restored)

    def adopt(self, entries: dict[tuple[str, str], Prepared]) -> None:
        self._restored = dict(entries)

    def compute(self, ticker: str, loaded: LoadedChampion) -> Prepared:
        """Read the online vector, check it is fresh, forecast and keep it (blocking I/O)."""
        from stockcast.forecasting.predict import feature_values, make_forecast

        fetched_at = self.clock()
        row = online_features(self.state, ticker)
        prepared = Prepared(
            forecast=make_forecast(ticker, row, loaded.model, loaded.name, loaded.version),
            features=feature_values(row),
            fetched_at=fetched_at,
        )
        broken = prepared.not_finite()
        if broken:  # the stored features or the model are at fault, not the request
            raise HTTPException(
                503,
                f"{ticker}'s champion (version {loaded.version}) made a forecast that is not a finite "
                f"number from its online features ({', '.join(broken)}); it is not served",
            )
        with self._lock:
            # Older versions' entries go: a rolled-back-to version is recomputed when it returns.
            self._entries = {key: value for key, value in self._entries.items() if key[0] != ticker}
            self._entries[(ticker, loaded.version)] = prepared
        return prepared


def champion_for(state: ServingState, ticker: str) -> LoadedChampion:
    loaded = state.champions.get(ticker)
    if loaded is None:
        problem = state.champions.problems.get(ticker)
        if problem is not None:  # configured, but its model cannot be served
            raise HTTPException(503, f"{ticker} cannot be forecast: {problem}")
        served = ", ".join(sorted(state.champions.versions())) or "none"
        raise HTTPException(404, f"unknown ticker {ticker}; served tickers: {served}")
    return loaded


def online_features(state: ServingState, ticker: str) -> pd.Series:
    from stockcast.features.feature_store import TTL
    from stockcast.forecasting.predict import (
        ForecastUnavailableError,
        StaleFeaturesError,
        check_freshness,
        online_row,
    )

    context = state.context
    try:
        row = online_row(context.feature_store.online([ticker]), ticker)
        check_freshness(ticker, row["date"].date(), context.store.latest_price_date(ticker), TTL)
    except StaleFeaturesError as error:
        raise HTTPException(503, str(error)) from error
    except ForecastUnavailableError as error:
        raise HTTPException(404, str(error)) from error
    return row


def what_if_features(ticker: str, closes: list[float], as_of: date) -> pd.Series:
    """Feature row computed from hypothetical closes ending at ``as_of``, by the same code
    that builds training features. Without highs, lows and volumes, the range and volume
    features take their neutral values."""
    import pandas as pd

    from stockcast.calendars import calendar_for
    from stockcast.features.build import build_features

    sessions = calendar_for(ticker).sessions_window(pd.Timestamp(as_of), -len(closes))
    bars = pd.DataFrame(
        {
            "ticker": ticker,
            "date": pd.DatetimeIndex(sessions).tz_localize(None),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": float("nan"),
            "dividends": 0.0,
        }
    )
    return build_features(bars).iloc[-1]


def what_if(state: ServingState, ticker: str, loaded: LoadedChampion, closes: list[float]) -> Prepared:
    from stockcast.forecasting.predict import feature_values, make_forecast

    row = what_if_features(ticker, closes, online_features(state, ticker)["date"].date())
    prepared = Prepared(
        forecast=make_forecast(ticker, row, loaded.model, loaded.name, loaded.version),
        features=feature_values(row),
        fetched_at=time.monotonic(),
    )
    broken = prepared.not_finite()
    if broken:
        raise HTTPException(
            422,
            f"recent_prices: {ticker}'s champion (version {loaded.version}) turns these closes into a "
            f"forecast that is not a finite number ({', '.join(broken)}); it is neither served nor logged",
        )
    return prepared


def _records(prepared: Sequence[Prepared], origin: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {**item.forecast.record(uuid.uuid4().hex, origin, item.features), "created_at": now}
        for item in prepared
    ]


async def serve(state: ServingState, prepared: Sequence[Prepared], origin: str) -> list[ForecastResponse]:
    """Log the forecasts (one shared commit with whatever else is being served), then answer;
    a forecast that cannot be logged is not served (503)."""
    records = _records(prepared, origin)
    try:
        await asyncio.wrap_future(state.forecast_log.submit(records))
    except Exception as error:
        raise HTTPException(503, LOG_FAILED) from error
    return _answers(state, prepared, records, origin)


def serve_blocking(state: ServingState, prepared: Sequence[Prepared], origin: str) -> list[ForecastResponse]:
    """``serve`` for a route that runs in a worker thread."""
    records = _records(prepared, origin)
    try:
        state.forecast_log.submit(records).result()
    except Exception as error:
        raise HTTPException(503, LOG_FAILED) from error
    return _answers(state, prepared, records, origin)


def _answers(
    state: ServingState, prepared: Sequence[Prepared], records: list[dict[str, Any]], origin: str
) -> list[ForecastResponse]:
    answers = []
    for item, record in zip(prepared, records, strict=True):
        forecast = item.forecast
        state.metrics.forecasts.labels(forecast.ticker, forecast.model_version, origin).inc()
        answers.append(
            ForecastResponse(
                ticker=forecast.ticker,
                as_of=forecast.as_of,
                target_date=forecast.target_date,
                predicted_close=forecast.predicted_close,
                interval=Interval(lower=forecast.lower, upper=forecast.upper, level=forecast.level),
                intervals=[
                    Interval(lower=lower, upper=upper, level=level)
                    for level, lower, upper in forecast.intervals
                ],
                model=ModelRef(
                    name=forecast.model_name, version=forecast.model_version, kind=forecast.model_kind
                ),
                request_id=record["request_id"],
            )
        )
    return answers
