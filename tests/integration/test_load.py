"""Load with accounting: 64 connections drive GET /predict on a real `stockcast serve` for a
bounded time; afterwards every answered forecast is in the log, once, and nothing failed.
`LOAD_SECONDS` sets the duration (`make soak` runs longer)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import clean_environment
from tests.series import autocorrelated_bars
from tests.services import free_port, wait_until

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.pipeline import train_many
from stockcast.settings import load_settings
from stockcast.store.database import Store

CONNECTIONS = 64
SECONDS = float(os.environ.get("LOAD_SECONDS", "6"))


@pytest.fixture
def served(tmp_path):
    settings = {
        "STOCKCAST_DATA_DIR": str(tmp_path / "data"),
        "STOCKCAST_TICKERS": "AAA",
        "STOCKCAST_MODELS": "naive,ridge",
        "STOCKCAST_BACKTEST_DAYS": "100",
        "STOCKCAST_MIN_TRAIN_DAYS": "150",
        "STOCKCAST_REFIT_EVERY_DAYS": "50",
        "STOCKCAST_RATE_LIMIT_PER_MINUTE": "0",  # the limiter is tested elsewhere; count everything here
    }
    context = Context(
        load_settings(**{key.removeprefix("STOCKCAST_").lower(): value for key, value in settings.items()})
    )
    context.store.upsert_prices(autocorrelated_bars(500, phi=0.4))
    refresh_feature_store(context)
    _, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "stockcast"), "serve", "--port", str(port)],
        env=clean_environment(**settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, "stockcast serve", process, seconds=120)
    yield url, context.settings.resolved_database_url
    process.terminate()
    process.wait(timeout=15)


async def drive(url: str, seconds: float) -> tuple[int, list[str]]:
    """Keep 64 requests in flight until the time is up; the 200s and every other outcome."""
    answered = 0
    problems: list[str] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def connection() -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                try:
                    response = await client.get("/predict/AAA")
                except httpx.HTTPError as error:
                    problems.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code == 200:
                    answered += 1
                else:
                    problems.append(f"{response.status_code}: {response.text[:200]}")

        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return answered, problems


@pytest.mark.fault(
    "API: 64 concurrent connections on `/predict` against a real `stockcast serve`",
    "No request fails; forecasts logged == forecasts answered 200, each once",
)
def test_every_forecast_answered_under_load_is_logged_once_and_none_fails(served):
    url, database = served
    store = Store(database)
    before = store.count_forecasts()
    answered, problems = asyncio.run(drive(url, SECONDS))
    assert problems == []
    assert answered > CONNECTIONS  # the load was real: every connection was answered, repeatedly
    logged = store.load_forecasts(ticker="AAA")
    api = logged.loc[logged["origin"] == "api"]
    assert store.count_forecasts() - before == answered == len(api)
    assert api["request_id"].is_unique
    store.dispose()
