"""What one API process holds: its adapters, the champions it serves, its metrics.

Champions are loaded once at start. A background thread checks the registry's ``champion``
aliases every ``champion_refresh_seconds`` and loads only versions that changed, so a
promotion or rollback made anywhere takes effect without a restart and no request waits for
the registry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from stockcast.serving.observability import Metrics
from stockcast.serving.security import ApiKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedChampion:
    name: str
    version: str
    model: Any


class ChampionCache:
    def __init__(self, context: Any, tickers: list[str], metrics: Metrics):
        self.context = context
        self.tickers = tickers
        self.metrics = metrics
        self._champions: dict[str, LoadedChampion] = {}
        self.problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, ticker: str) -> LoadedChampion | None:
        return self._champions.get(ticker)

    def versions(self) -> dict[str, str]:
        return {ticker: loaded.version for ticker, loaded in self._champions.items()}

    def refresh(self) -> list[str]:
        """Load every champion whose alias moved since the last look; returns the tickers
        that changed. A ticker whose model cannot be loaded keeps serving its previous one
        and is reported."""
        changed = []
        with self._lock:
            for ticker in self.tickers:
                try:
                    champion = self.context.registry.champion(ticker)
                except Exception as error:
                    self.problems[ticker] = f"registry unreachable: {error}"
                    continue
                if champion is None:
                    self.problems[ticker] = "no champion in the registry"
                    continue
                current = self._champions.get(ticker)
                if current is not None and current.version == champion.version:
                    continue
                start = time.perf_counter()
                try:
                    model = self.context.registry.load(ticker, champion.version)
                except Exception as error:
                    self.problems[ticker] = f"champion v{champion.version} failed to load: {error}"
                    continue
                self.metrics.model_load_seconds.observe(time.perf_counter() - start)
                self._champions = {
                    **self._champions,
                    ticker: LoadedChampion(champion.name, champion.version, model),
                }
                self.metrics.champion_version.labels(ticker).set(float(champion.version))
                self.problems.pop(ticker, None)
                changed.append(ticker)
        if changed:
            log.info("champions loaded: %s", ", ".join(f"{t} v{self._champions[t].version}" for t in changed))
        return changed


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
    problems: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start_refresher(self, every_seconds: float) -> None:
        def loop() -> None:
            while not self._stop.wait(every_seconds):
                self.champions.refresh()

        threading.Thread(target=loop, name="champion-refresher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self.jobs is not None:
            self.jobs.shutdown()
        if self.forecast_log is not None:
            self.forecast_log.close()
