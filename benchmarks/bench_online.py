"""Online feature lookup and in-process GET /predict latency, on a store filled from the sample.

.venv/bin/python benchmarks/bench_online.py [--requests 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(ordered)} calls)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["STOCKCAST_DATA_DIR"] = str(Path(folder) / "data")
        os.environ["STOCKCAST_SOURCE"] = "sample"
        os.environ["STOCKCAST_MODELS"] = "naive,ridge"
        os.environ["STOCKCAST_RATE_LIMIT_PER_MINUTE"] = "0"  # measure serving, not the limiter
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
