"""Online feature lookup and in-process GET /predict latency, on a store filled from the sample
(reported beside the HTTP figures of bench_serving.py; no goal of their own).

.venv/bin/python benchmarks/bench_online.py [--requests 500] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, emit


def quantiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def percentiles(samples_ms: list[float]) -> str:
    p50, p99 = quantiles(samples_ms)
    return f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(samples_ms)} calls)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["STOCKCAST_DATA_DIR"] = str(Path(folder) / "data")
        os.environ["STOCKCAST_SOURCE"] = "sample"
        os.environ["STOCKCAST_MODELS"] = "naive,ridge"
        os.environ["STOCKCAST_RATE_LIMIT_PER_MINUTE"] = "0"  # measure serving, not the limiter
        # Every request reads the online store (the API otherwise keeps a forecast for 5 s), so
        # the figure is a forecast's whole path and the lookup's share of it.
        os.environ["STOCKCAST_FEATURE_REFRESH_SECONDS"] = "0"
        from fastapi.testclient import TestClient

        from stockcast.context import Context
        from stockcast.pipeline import run_cycle
        from stockcast.serving.app import create_app
        from stockcast.settings import load_settings

        settings = load_settings()
        context = Context(settings)
        run_cycle(context, settings.tickers)
        tickers = settings.tickers

        lookups = []
        for index in range(args.requests):
            start = time.perf_counter()
            context.feature_store.online([tickers[index % len(tickers)]])
            lookups.append((time.perf_counter() - start) * 1000)

        with TestClient(create_app(settings)) as client:
            client.get(f"/predict/{tickers[0]}")  # warm-up
            requests = []
            for index in range(args.requests):
                start = time.perf_counter()
                response = client.get(f"/predict/{tickers[index % len(tickers)]}")
                requests.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text
        print("online serving latency (in process, SQLite online store, sample tickers)")
        print(f"  feast online lookup, one ticker   {percentiles(lookups)}")
        print(f"  GET /predict/{{ticker}} (TestClient) {percentiles(requests)}")
    lookup, served = quantiles(lookups), quantiles(requests)
    emit(
        [
            Figure(
                "Serving",
                "in process: GET /predict p50, reading the online store each time (reference: the Feast online lookup alone)",
                f"{served[0]:.2f} ms (p99 {served[1]:.2f})",
                f"{lookup[0]:.2f} ms (p99 {lookup[1]:.2f})",
                lookup[0] / served[0],
                None,
                "the share of a forecast's time that is the online lookup",
            )
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
