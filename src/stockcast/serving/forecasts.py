"""Serving a forecast: online features (or what-if closes) -> champions -> log -> answer.

A ticker's forecasts are a function of its champions' versions (one per horizon) and its
feature vector, so the API computes them once per (ticker, versions, online vector), from one
read of the online store, and keeps them: the hot path of ``GET /predict/{ticker}`` is a
dictionary lookup, fresh request ids and the forecast-log commit it waits for. A new champion
version at any horizon misses the cache by construction.

The online store is read again once a kept forecast is ``feature_refresh_seconds`` old. One
read per ticker is in flight at a time, however many requests arrive (they share it), and
within a second window of the same length the kept forecast is served while the read runs
behind (stale-while-revalidate), so no request waits for it under steady traffic. Without that,
every concurrent request missed together each window and queued for its own read: the p99
under load was 5x the bare endpoint's. A read that fails (stale or missing features) drops the
kept forecasts, so the next request reads itself and answers with why. A champion whose
forecast is not a finite number is kept as such (the same features would give it again): a
request for its horizon is a 503 saying so, and an answer of every horizon leaves it out unless
it is the first, whose forecast fills the one-day fields.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from fastapi.responses import Response

from stockcast.failpoints import failpoint
from stockcast.horizons import horizon_label
from stockcast.serving.ids import new_ids
from stockcast.serving.schemas import ForecastResponse, HorizonForecast, Interval, ModelRef
from stockcast.serving.state import LoadedChampion, ServingState, signature
from stockcast.store.database import ForecastRow, Logged

if TYPE_CHECKING:
    import pandas as pd

    from stockcast.forecasting.predict import Forecast

log = logging.getLogger(__name__)
LOG_FAILED = "the forecast could not be logged, so it is not served; try again"


@dataclass(frozen=True)
class Prepared:
    """A forecast ready to serve, with the feature values it was made from."""

    forecast: Forecast
    features: dict[str, float]

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

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (the serving snapshot) without what is derived and made again on use."""
        return {name: value for name, value in vars(self).items() if name != "logged"}

    @cached_property
    def logged(self) -> ForecastRow:
        """This forecast's row in the forecast log but for each serving's request id, origin and
        time: made once (the feature values serialised once), not per request."""
        record = self.forecast.record("", "")
        record["features"] = json.dumps(self.features, sort_keys=True)
        return ForecastRow(record)


Champions = dict[int, LoadedChampion]  # a ticker's champions by horizon


@dataclass(frozen=True)
class Ready:
    """A ticker's forecasts at every horizon it is served at, from one read of its features;
    a horizon whose champion made a forecast that is not finite has, instead, why."""

    versions: tuple[tuple[int, str], ...]
    by_horizon: dict[int, Prepared]
    fetched_at: float
    broken: dict[int, str] = field(default_factory=dict)
    # The online vector they were made from (``vector_of``): a read that finds it unchanged
    # keeps them, re-stamped, rather than forecasting again.
    vector: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)
    # Answers rendered once, by the horizons they hold (see ``Rendered``).
    rendered: dict[tuple[int, ...], Rendered] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**vars(self), "rendered": {}}  # rendered again on use, by this code

    def pick(self, horizons: Sequence[int], every: bool = False) -> list[Prepared]:
        """The forecasts of ``horizons`` in that order; 503 naming one that is not servable.
        ``every`` (an answer of every served horizon, not one asked for): only the first, whose
        forecast fills the answer's one-day fields, must be; a later one that is not is left
        out (its cause was logged when it was made)."""
        for position, horizon in enumerate(horizons):
            if horizon in self.broken and (position == 0 or not every):
                raise HTTPException(503, self.broken[horizon])
        return [self.by_horizon[horizon] for horizon in horizons if horizon not in self.broken]


def _broken_message(ticker: str, horizon: int, loaded: LoadedChampion, broken: list[str], source: str) -> str:
    ahead = "" if horizon == 1 else f" at {horizon} sessions"
    return (
        f"{ticker}'s champion{ahead} (version {loaded.version}) made a forecast that is not a finite "
        f"number from {source} ({', '.join(broken)})"
    )


def vector_of(row: pd.Series) -> tuple[tuple[str, Any], ...]:
    """What a ticker's forecasts are made from besides its champions: every value of its online
    row (the features, the close, the stamp and the as-of day)."""
    return tuple(row.items())


def prepare(ticker: str, row: pd.Series, champions: Champions, fetched_at: float) -> Ready:
    """Every champion of a ticker applied to one feature row."""
    from stockcast.forecasting.predict import feature_values, make_forecast

    features = feature_values(row)
    by_horizon: dict[int, Prepared] = {}
    broken: dict[int, str] = {}
    for horizon, loaded in sorted(champions.items()):
        prepared = Prepared(make_forecast(ticker, row, loaded.model, loaded.name, loaded.version), features)
        problems = prepared.not_finite()
        if problems:
            broken[horizon] = _broken_message(ticker, horizon, loaded, problems, "its online features")
            broken[horizon] += "; it is not served"
            log.warning("%s", broken[horizon])
        else:
            by_horizon[horizon] = prepared
    return Ready(signature(champions), by_horizon, fetched_at, broken, vector_of(row))


class ForecastCache:
    def __init__(
        self, state: ServingState, max_age_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.state = state
        self.max_age = max_age_seconds
        self.clock = clock
        self._entries: dict[str, Ready] = {}
        self._restored: dict[str, Ready] = {}
        self.warm = False  # every ticker has been computed once by this process
        self.reads = 0  # online-store reads made for requests (the warm-up's not counted)
        self._lock = threading.Lock()
        self._reading: dict[tuple[str, tuple[tuple[int, str], ...]], Future[Ready]] = {}
        self._waiting: list[tuple[str, Champions, Future[Ready]]] = []
        self._batch_queued = False
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="forecast-read")

    def _kept(
        self, entries: dict[str, Ready], ticker: str, versions: tuple[tuple[int, str], ...]
    ) -> Ready | None:
        entry = entries.get(ticker)
        return entry if entry is not None and entry.versions == versions else None

    def get(self, ticker: str, champions: Champions) -> Ready | None:
        """The kept forecasts of these champion versions, unless older than the limit (a look
        that starts no read; requests go through ``lookup``).
        Until this process has warmed up, forecasts restored from the last run's snapshot
        stand in, so requests do not wait for the feature store to open."""
        versions = signature(champions)
        entry = self._kept(self._entries, ticker, versions)
        if entry is not None and self.clock() - entry.fetched_at <= self.max_age:
            return entry
        if not self.warm:
            return self._kept(self._restored, ticker, versions)
        return None

    def lookup(self, ticker: str, champions: Champions) -> Ready | Future[Ready]:
        """What a request serves: the kept forecasts while fresh, or within the second window
        while one read refreshes them behind; else the read in flight, shared."""
        versions = signature(champions)
        entry = self._kept(self._entries, ticker, versions)
        if entry is not None:
            age = self.clock() - entry.fetched_at
            if age <= self.max_age:
                return entry
            if age <= 2 * self.max_age:
                self.read(ticker, champions)
                return entry
        if not self.warm:
            restored = self._kept(self._restored, ticker, versions)
            if restored is not None:
                return restored
        return self.read(ticker, champions)

    def read(self, ticker: str, champions: Champions) -> Future[Ready]:
        """Start a read of the online store for these champions, or join the one waiting or
        running. Reads asked for while others wait to start go out together: one lookup of the
        online store (and of the newest bars) for all their tickers, where a read per ticker
        made a refresh window of 50 tickers cost 50 lookups."""
        key = (ticker, signature(champions))
        with self._lock:
            running = self._reading.get(key)
            if running is None:
                running = Future()
                self._reading[key] = running
                self._waiting.append((ticker, champions, running))
                self.reads += 1
                if not self._batch_queued:
                    self._batch_queued = True
                    self._readers.submit(self._read_waiting)
        return running

    def _read_waiting(self) -> None:
        """One read for every ticker waiting; each settled before its waiters wake, so the next
        lookup sees its outcome."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._batch_queued = False
        if not batch:
            return
        tickers = list(dict.fromkeys(ticker for ticker, _, _ in batch))
        rows: dict[str, Any]
        try:
            failpoint("serving.forecast_read")
            fetched_at = self.clock()
            rows = online_features_of(self.state, tickers)
        except BaseException as error:  # the store or feature store away: every read fails
            rows, fetched_at = dict.fromkeys(tickers, error), self.clock()
        for ticker, champions, future in batch:
            key = (ticker, signature(champions))
            try:
                row = rows[ticker]
                if isinstance(row, BaseException):
                    raise row
                ready = self._keep(ticker, self._made(ticker, row, champions, fetched_at))
            except BaseException as error:
                with self._lock:  # what is kept would hide why the read failed
                    if (kept := self._entries.get(ticker)) is not None and kept.versions == key[1]:
                        self._entries = {
                            name: entry for name, entry in self._entries.items() if name != ticker
                        }
                    del self._reading[key]
                future.set_exception(error)
            else:
                with self._lock:
                    del self._reading[key]
                future.set_result(ready)

    def close(self) -> None:
        """Stop reading; a request still waiting for a read that will not start now is told so."""
        self._readers.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            waiting, self._waiting = self._waiting, []
            for ticker, champions, _ in waiting:
                self._reading.pop((ticker, signature(champions)), None)
        for _, _, future in waiting:
            future.set_exception(HTTPException(503, "the API is shutting down"))

    def export(self) -> dict[str, Ready]:
        return dict(self._entries) or dict(self._restored)

    def adopt(self, entries: dict[str, Ready]) -> None:
        self._restored = dict(entries)

    def compute_all(self, champions: dict[str, Champions]) -> dict[str, Ready | Exception]:
        """Read many tickers' online vectors (one read of the online store), check they are
        fresh, forecast at every horizon and keep them (blocking I/O): each ticker's kept
        forecasts, or why it has none."""
        fetched_at = self.clock()
        rows = online_features_of(self.state, list(champions))
        outcomes: dict[str, Ready | Exception] = {}
        for ticker, row in rows.items():
            try:
                if isinstance(row, Exception):
                    raise row
                outcomes[ticker] = self._keep(ticker, self._made(ticker, row, champions[ticker], fetched_at))
            except Exception as error:
                outcomes[ticker] = error
        return outcomes

    def _made(self, ticker: str, row: pd.Series, champions: Champions, fetched_at: float) -> Ready:
        """The forecasts of these champions from this online row: the kept (or restored) ones,
        re-stamped, when they were made from the same row by the same versions, as they are
        between two days' bars; else made again. A refresh of 50 unchanged tickers (150
        champions) had cost 0.1 s of Python holding the interpreter's lock, every window."""
        versions, vector = signature(champions), vector_of(row)
        for entries in (self._entries, self._restored):
            kept = self._kept(entries, ticker, versions)
            if kept is not None and kept.vector == vector:
                return replace(kept, fetched_at=fetched_at)
        return prepare(ticker, row, champions, fetched_at)

    def _keep(self, ticker: str, ready: Ready) -> Ready:
        with self._lock:
            # One entry per ticker, the newest read's: other versions' forecasts go (a
            # rolled-back-to version is recomputed when it returns), and a read that started
            # before the kept one (an older champion's, finishing late) does not replace it.
            kept = self._entries.get(ticker)
            if kept is None or kept.fetched_at <= ready.fetched_at:
                self._entries = {**self._entries, ticker: ready}
        return ready


def champions_for(
    state: ServingState, ticker: str, horizon: int | None = None
) -> tuple[Champions, list[int]]:
    """A ticker's loaded champions and the horizons a request for it is answered at: every
    served one, or the one asked for. 404 for a ticker or horizon not served, 503 when the
    model of the answer's first horizon cannot be served."""
    cache = state.champions
    if ticker not in cache.tickers:
        served = ", ".join(cache.tickers) or "none"
        raise HTTPException(404, f"unknown ticker {ticker}; served tickers: {served}")
    if horizon is not None and horizon not in cache.horizons:
        served = ", ".join(str(each) for each in cache.horizons)
        raise HTTPException(
            404, f"horizon {horizon} is not served; served horizons (sessions ahead): {served}"
        )
    champions = cache.of(ticker)
    # The answer's one-day fields are the shortest horizon's: without it there is no answer. A
    # longer horizon without a champion (too little history to train it) is left out.
    needed = horizon if horizon is not None else cache.shortest
    if needed not in champions:
        problem = cache.problems.get(horizon_label(ticker, needed), "no champion loaded yet")
        ahead = "" if needed == 1 else f" {needed} sessions ahead"
        raise HTTPException(503, f"{ticker} cannot be forecast{ahead}: {problem}")
    return champions, [needed] if horizon is not None else sorted(champions)


def online_features(state: ServingState, ticker: str) -> pd.Series:
    row = online_features_of(state, [ticker])[ticker]
    if isinstance(row, Exception):
        raise row
    return row


def online_features_of(state: ServingState, tickers: list[str]) -> dict[str, pd.Series | HTTPException]:
    """Each ticker's online vector, checked fresh against its newest stored bar, from one read
    of the online store and one of the bars; or the HTTP error a request for it answers (404
    without features, 503 when they are stale)."""
    from stockcast.features.feature_store import TTL
    from stockcast.forecasting.predict import (
        ForecastUnavailableError,
        StaleFeaturesError,
        check_freshness,
        online_rows,
        row_of,
    )

    context = state.context
    online = online_rows(context.feature_store.online(tickers))
    newest = context.store.latest_price_dates(tickers)
    rows: dict[str, pd.Series | HTTPException] = {}
    for ticker in tickers:
        try:
            row = row_of(online, ticker)
            check_freshness(ticker, row["date"].date(), newest.get(ticker), TTL)
        except StaleFeaturesError as error:
            rows[ticker] = HTTPException(503, str(error))
            rows[ticker].__cause__ = error
        except ForecastUnavailableError as error:
            rows[ticker] = HTTPException(404, str(error))
            rows[ticker].__cause__ = error
        else:
            rows[ticker] = row
    return rows


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


def what_if(state: ServingState, ticker: str, champions: Champions, closes: list[float]) -> Ready:
    row = what_if_features(ticker, closes, online_features(state, ticker)["date"].date())
    from stockcast.forecasting.predict import feature_values, make_forecast

    features = feature_values(row)
    by_horizon = {}
    for horizon, loaded in sorted(champions.items()):
        prepared = Prepared(make_forecast(ticker, row, loaded.model, loaded.name, loaded.version), features)
        broken = prepared.not_finite()
        if broken:
            problem = _broken_message(ticker, horizon, loaded, broken, "these closes")
            raise HTTPException(422, f"recent_prices: {problem}; it is neither served nor logged")
        by_horizon[horizon] = prepared
    return Ready(signature(champions), by_horizon, time.monotonic())


def _records(prepared: Sequence[Prepared], origin: str) -> list[Logged]:
    now = datetime.now(UTC)
    return [
        Logged(item.logged, request_id, origin, now)
        for item, request_id in zip(prepared, new_ids(len(prepared)), strict=True)
    ]


Answer = Sequence[Prepared]  # one ticker's answer: its forecasts, the shortest horizon first


async def _log(state: ServingState, records: list[Logged]) -> None:
    """Commit the rows to the forecast log (shared with whatever else is being served); a 503
    when they cannot be, so that nothing unlogged is served."""
    try:
        await state.forecast_log.write(records)
    except Exception as error:
        raise HTTPException(503, LOG_FAILED) from error


async def serve(state: ServingState, answers: Sequence[Answer], origin: str) -> list[ForecastResponse]:
    """Log every forecast of the answers (one shared commit with whatever else is being served),
    then answer; forecasts that cannot be logged are not served (503)."""
    records = _records([item for answer in answers for item in answer], origin)
    await _log(state, records)
    logged = iter(records)
    responses = []
    for answer in answers:
        ids = [next(logged).request_id for _ in answer]
        responses.append(_response(answer, ids))
        _count(state, answer, origin)
    return responses


async def serve_kept(state: ServingState, ready: Ready, answer: Answer, origin: str) -> Response:
    """``serve`` for one answer of kept forecasts (GET /predict/{ticker}): the same log rows and
    the same JSON, from the answer rendered once per kept entry, with its request ids put in."""
    horizons = tuple(item.forecast.horizon for item in answer)
    rendered = ready.rendered.get(horizons)
    if rendered is None:
        rendered = ready.rendered.setdefault(horizons, Rendered.of(answer))
    records = _records(answer, origin)
    await _log(state, records)
    _count(state, answer, origin)
    return Response(rendered.body([record.request_id for record in records]), media_type="application/json")


def _count(state: ServingState, answer: Answer, origin: str) -> None:
    for item in answer:
        forecast = item.forecast
        state.metrics.forecast_served(forecast.ticker, forecast.horizon, forecast.model_version, origin).inc()


def _response(answer: Answer, request_ids: Sequence[str]) -> ForecastResponse:
    horizons = [
        _horizon_answer(item.forecast, request_id)
        for item, request_id in zip(answer, request_ids, strict=True)
    ]
    first, forecast = horizons[0], answer[0].forecast
    return ForecastResponse(
        ticker=forecast.ticker,
        as_of=forecast.as_of,
        horizon=first.horizon,
        target_date=first.target_date,
        predicted_close=first.predicted_close,
        interval=first.interval,
        intervals=first.intervals,
        model=first.model,
        request_id=first.request_id,
        forecasts=horizons,
    )


_MARK = secrets.token_hex(8)  # stands in for request ids while an answer is rendered
_MARKED = re.compile(rf"{_MARK}(\d{{4}})")


@dataclass(frozen=True)
class Rendered:
    """An answer's JSON (``ForecastResponse`` as pydantic writes it) with its request ids cut
    out: ``parts[0] id parts[1] id ...``, each gap the id of horizon ``slots[i]`` of the answer.
    A kept forecast is answered again and again with only new ids, so it is validated and
    serialised once, not per request."""

    parts: tuple[bytes, ...]
    slots: tuple[int, ...]

    @classmethod
    def of(cls, answer: Answer) -> Rendered:
        text = _response(answer, [f"{_MARK}{index:04d}" for index in range(len(answer))]).model_dump_json()
        pieces = _MARKED.split(text)
        return cls(tuple(piece.encode() for piece in pieces[::2]), tuple(int(slot) for slot in pieces[1::2]))

    def body(self, request_ids: Sequence[str]) -> bytes:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out += (request_ids[slot].encode(), part)
        return b"".join(out)


def _horizon_answer(forecast: Forecast, request_id: str) -> HorizonForecast:
    return HorizonForecast(
        horizon=forecast.horizon,
        target_date=forecast.target_date,
        predicted_close=forecast.predicted_close,
        interval=Interval(lower=forecast.lower, upper=forecast.upper, level=forecast.level),
        intervals=[
            Interval(lower=lower, upper=upper, level=level) for level, lower, upper in forecast.intervals
        ],
        model=ModelRef(name=forecast.model_name, version=forecast.model_version, kind=forecast.model_kind),
        request_id=request_id,
    )
