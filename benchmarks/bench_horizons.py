"""Horizons: what forecasting 1, 5 and 20 sessions ahead costs against one session ahead.

    .venv/bin/python benchmarks/bench_horizons.py [--tickers 4] [--json FILE]

The daily cycle (`stockcast run`, each run its own process) with STOCKCAST_HORIZONS=1,5,20
against the same with STOCKCAST_HORIZONS=1, on the same tickers from
../shared/data/sp500_2018_2023.parquet, in the default candidate configuration (six candidates,
250-day backtests refit every 20 sessions): the horizons' training is the cost being measured,
and the light configuration of the scale figures would hide it. A first run (ingest, features,
training every model) and the next day (nothing new to train: forecast, score, monitor) are
measured apart. Goals (issue 22): the next day at most 1.5x, the first run at most 2.5x; the
ratio shown is the allowance over the measured cost ratio (1 or more meets the goal). The two
configurations alternate which runs first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench_scale import DEFAULT, PRICES, describe, environment, measured_run, tickers_of
from figures import Figure, emit

GOALS = {"first run": 2.5, "next day": 1.5}
HORIZONS = "1,5,20"


def cycle(tickers: list[str], horizons: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        env = environment(Path(folder), tickers, DEFAULT, STOCKCAST_HORIZONS=horizons)
        first = measured_run(env)
        second = measured_run(env)
    return {"first run": first["seconds"], "next day": second["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=4)
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    tickers = tickers_of(args.tickers)
    # Alternated, so that neither configuration always runs on a cold disk cache.
    one = cycle(tickers, "1")
    three = cycle(tickers, HORIZONS)
    one_again = cycle(tickers, "1")
    ones = {key: (one[key] + one_again[key]) / 2 for key in one}
    described = describe(DEFAULT)
    print(f"daily cycle, {len(tickers)} tickers ({described}):")
    for key in GOALS:
        print(
            f"  {key}: horizons {HORIZONS} {three[key]:.1f} s; horizon 1 {one[key]:.1f} s and "
            f"{one_again[key]:.1f} s (before and after)"
        )
    figures = []
    for key, allowed in GOALS.items():
        cost = three[key] / ones[key]
        figures.append(
            Figure(
                "Horizons",
                f"`stockcast run` {key} with horizons {HORIZONS} vs 1, {len(tickers)} tickers, {described} "
                f"(goal: cost ratio <= {allowed}; ratio shown = {allowed} / cost ratio)",
                f"{three[key]:.1f} s",
                f"{ones[key]:.1f} s (mean of {one[key]:.1f} and {one_again[key]:.1f})",
                allowed / cost,
                1.0,
                f"cost ratio {cost:.2f}",
            )
        )
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
