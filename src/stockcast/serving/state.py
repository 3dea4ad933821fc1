"""What one API process holds: its adapters, the champions it serves, its metrics.

Champions are loaded once at start. A background thread checks the registry's ``champion``
aliases every ``champion_refresh_seconds`` and loads only versions that changed, so a
promotion or rollback made anywhere takes effect without a restart and no request waits for
the registry.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockcast.horizons import horizon_label
from stockcast.serving.observability import Metrics
from stockcast.serving.security import ApiKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """What serving uses of a packaged ``ForecastModel``. It holds no MLflow class, so the
    snapshot of served champions unpickles without importing MLflow."""

    forecaster: Any
    kind: str
    interval_bounds: dict[float, tuple[float, float]]
    level: float
    horizon: int = 1  # sessions ahead (snapshots written before horizons read 1 from here)

    @classmethod
    def of(cls, packaged: Any) -> ServedModel:
        from stockcast.registry.pyfunc_model import bounds_of, horizon_of

        return cls(
            packaged.forecaster, packaged.kind, bounds_of(packaged), packaged.level, horizon_of(packaged)
        )


@dataclass(frozen=True)
class LoadedChampion:
    name: str
    version: str
    model: ServedModel

    @property
    def horizon(self) -> int:
        return int(getattr(self.model, "horizon", 1))


def signature(champions: dict[int, LoadedChampion]) -> tuple[tuple[int, str], ...]:
    """What a ticker's forecasts are made with: (horizon, version) of each of its champions."""
    return tuple((horizon, loaded.version) for horizon, loaded in sorted(champions.items()))


class ChampionCache:
    """The champions one process serves, one per ticker and configured horizon, loaded from the
    registry and reloaded when an alias moves."""

    def __init__(self, context: Any, tickers: list[str], metrics: Metrics, horizons: list[int] | None = None):
        self.context = context
        self.tickers = tickers
        self.horizons = sorted(horizons or [1])
        self.metrics = metrics
        # Replaced whole on every change, never changed in place (requests read it unlocked).
        self._champions: dict[tuple[str, int], LoadedChampion] = {}
        self._by_ticker: tuple[dict[Any, Any], dict[str, dict[int, LoadedChampion]]] = ({}, {})
        self.problems: dict[str, str] = {}
        self.verified = False  # the registry has been asked at least once
        self._lock = threading.Lock()

    @property
    def shortest(self) -> int:
        """The horizon of the one-day fields of an answer."""
        return self.horizons[0]

    def adopt(self, champions: dict[tuple[str, int], LoadedChampion]) -> None:
        """Serve these (from a snapshot) until ``refresh`` has asked the registry."""
        with self._lock:
            self._champions = {
                (ticker, horizon): champions[(ticker, horizon)]
                for ticker in self.tickers
                for horizon in self.horizons
                if (ticker, horizon) in champions
            }
            for (ticker, horizon), loaded in self._champions.items():
                self.metrics.champion_version.labels(ticker, str(horizon)).set(float(loaded.version))

    def all(self) -> dict[tuple[str, int], LoadedChampion]:
        return dict(self._champions)

    def get(self, ticker: str, horizon: int | None = None) -> LoadedChampion | None:
        """The champion of ``ticker`` at ``horizon`` (the shortest configured one when None)."""
        return self._champions.get((ticker, self.shortest if horizon is None else horizon))

    def of(self, ticker: str) -> dict[int, LoadedChampion]:
        """Every loaded champion of a ticker, by horizon, shortest first (not to be changed:
        it is kept for the next request until the champions change)."""
        champions = self._champions
        source, views = self._by_ticker
        if source is not champions:
            views = {}
            self._by_ticker = (champions, views)
        found = views.get(ticker)
        if found is None:
            found = views[ticker] = {
                horizon: champions[(ticker, horizon)]
                for horizon in self.horizons
                if (ticker, horizon) in champions
            }
        return found

    def signature(self, ticker: str) -> tuple[tuple[int, str], ...]:
        return signature(self.of(ticker))

    def versions(self) -> dict[str, str]:
        """The version each ticker is served with at the shortest horizon."""
        return {
            ticker: loaded.version
            for (ticker, horizon), loaded in self._champions.items()
            if horizon == self.shortest
        }

    def refresh(self) -> list[str]:
        """Load every champion whose alias moved since the last look; returns the tickers
        that changed (``AAPL +5`` for a longer horizon). One listing of the registry's aliases
        for every ticker and horizon; a model that cannot be loaded keeps serving its previous
        one and is reported."""
        from stockcast.registry.mlflow_registry import model_name_for

        changed = []
        with self._lock:
            try:
                aliased = self.context.registry.aliased_all(self.tickers, self.horizons)
            except Exception as error:
                for ticker in self.tickers:
                    for horizon in self.horizons:
                        self.problems[horizon_label(ticker, horizon)] = f"registry unreachable: {error}"
                aliased = None
            for ticker in self.tickers if aliased is not None else []:
                for horizon in self.horizons:
                    label = horizon_label(ticker, horizon)
                    version = aliased.get((ticker, horizon))
                    if version is None:
                        self.problems[label] = "no champion in the registry"
                        continue
                    current = self._champions.get((ticker, horizon))
                    if current is not None and current.version == version:
                        continue
                    start = time.perf_counter()
                    try:
                        model = ServedModel.of(self.context.registry.load(ticker, version, horizon))
                    except Exception as error:
                        self.problems[label] = f"champion v{version} failed to load: {error}"
                        continue
                    self.metrics.model_load_seconds.observe(time.perf_counter() - start)
                    loaded = LoadedChampion(model_name_for(ticker, horizon), version, model)
                    self._champions = {**self._champions, (ticker, horizon): loaded}
                    self.metrics.champion_version.labels(ticker, str(horizon)).set(float(version))
                    self.problems.pop(label, None)
                    changed.append(label)
            self.verified = True
        if changed:
            log.info("champions loaded: %s", ", ".join(changed))
        return changed


WARM_UP_SWITCH_SECONDS = 0.001


class _GivingWay:
    """While the API warms up behind the requests it already serves (seconds of imports of
    MLflow and Feast, Python that never waits on I/O and so never lets go of the interpreter's
    lock by itself):

    - the cyclic garbage collector is paused, with everything loaded before frozen: the imports
      make hundreds of thousands of objects, and the full collections they set off paused the
      requests for a tenth of a second or more (p99 217 ms over the first 10 s of load);
    - the interpreter passes its lock between threads every millisecond instead of every 5, so
      a request that let go of it for I/O has it back within a millisecond.

    Both are restored once the last warm-up in the process is over; ``warm_up`` freezes what it
    loaded, so the collections that follow do not scan it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._interval = sys.getswitchinterval()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._inside == 0:
                self._interval = sys.getswitchinterval()
                gc.freeze()
                gc.disable()
                sys.setswitchinterval(WARM_UP_SWITCH_SECONDS)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    sys.setswitchinterval(self._interval)
                    gc.enable()


_giving_way = _GivingWay()


@dataclass
class ServingState:
    context: Any
    champions: ChampionCache
    metrics: Metrics
    keys: ApiKeys
    jobs: Any = None
    limiter: Any = None
    forecasts: Any = None
    forecast_log: Any = None
    snapshot: Path | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _warm_up: threading.Thread | None = None
    # Set once the warm-up has made the first forecasts (or ended without them).
    _warm_up_settled: threading.Event = field(default_factory=threading.Event)

    def warm_up(self) -> None:
        """Open what a first forecast needs and make every champion's forecast, so the first
        requests find them ready. A ticker that cannot be forecast is left to its requests,
        which say why."""
        from stockcast.calendars import calendar_for

        _ = self.context.feature_store.store
        for ticker in self.champions.tickers:
            calendar_for(ticker)
        served = {ticker: self.champions.of(ticker) for ticker in self.champions.tickers}
        served = {ticker: champions for ticker, champions in served.items() if champions}
        if served and self.forecasts is not None:
            try:
                outcomes = self.forecasts.compute_all(served)
            except Exception as error:
                outcomes = dict.fromkeys(served, error)
            for ticker, outcome in outcomes.items():
                if isinstance(outcome, Exception):
                    log.info("no forecast of %s at start: %s", ticker, getattr(outcome, "detail", outcome))
        if self.forecasts is not None:
            self.forecasts.warm = True
        self._warm_up_settled.set()
        self.save_snapshot()
        # What is loaded now lives as long as the process: kept out of the collector's sight,
        # full collections stop scanning it and pausing requests under load. (Not collected
        # first: a full collection here paused the requests being served for a tenth of a
        # second; what the imports left as garbage is small and made once.)
        gc.freeze()

    def start_background_warm_up(self, refresh: bool = True) -> None:
        """Warm up behind requests (asking the registry first, when serving from the snapshot),
        giving way to them (``_giving_way``)."""

        def run() -> None:
            try:
                with _giving_way():
                    if refresh:
                        self.champions.refresh()
                    self.warm_up()
            finally:
                self._warm_up_settled.set()  # made, or failed: requests say why

        self._warm_up = threading.Thread(target=run, name="serving-warm-up", daemon=True)
        self._warm_up.start()

    def start_refresher(self, every_seconds: float) -> None:
        def loop() -> None:
            while not self._stop.wait(every_seconds):
                if self.champions.refresh():
                    self.save_snapshot()

        threading.Thread(target=loop, name="champion-refresher", daemon=True).start()

    def save_snapshot(self) -> None:
        from stockcast.serving.snapshot import save

        if self.snapshot is not None:
            save(self, self.snapshot)

    def restore_snapshot(self) -> bool:
        from stockcast.serving.snapshot import restore

        return self.snapshot is not None and restore(self, self.snapshot)

    def wait_for_first_forecasts(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the warm-up to have made every ticker's forecast
        (or to have ended without: then requests say why); False if it is still at work."""
        return self._warm_up_settled.wait(timeout)

    def join_warm_up(self, timeout: float = 60.0) -> bool:
        """Wait for the background warm-up; True once it is over (or there was none)."""
        if self._warm_up is not None:
            self._warm_up.join(timeout)
            return not self._warm_up.is_alive()
        return True

    def stop(self) -> None:
        self._stop.set()
        self.join_warm_up()
        if self.jobs is not None:
            self.jobs.shutdown()
        if self.forecast_log is not None:
            self.forecast_log.close()
        if self.forecasts is not None:
            self.forecasts.close()
        if self.champions.verified:
            self.save_snapshot()
