"""Scale: the daily cycle at 50 and 500 tickers, and training on a Dask LocalCluster with 1
and 2 workers. Prices from ../shared/data/sp500_2018_2023.parquet (501 tickers); skipped when
that file is absent.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 50,500] [--train-tickers 32] [--skip-cycle] [--skip-dask] [--json FILE]

Each cycle runs `stockcast run` twice in a fresh directory, each in its own process, so its
peak memory is its own: the first run ingests, materializes and trains every ticker; the
second is a day with nothing new, what a scheduled run costs when no retraining is due.
So that `make bench` stays under 15 minutes, the cycle runs the naive and drift candidates on
60-day backtests and writes no Evidently reports (STOCKCAST_REPORTS_WHEN_DUE=false; a report
costs about 2 s a ticker, the same for every ticker, so it adds a linear term). The Dask
figure uses all six candidates: the backtests are the work being spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, emit

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT.parent / "shared" / "data" / "sp500_2018_2023.parquet"
LIGHT = {
    "STOCKCAST_MODELS": "naive,drift",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "250",
    "STOCKCAST_REPORTS_WHEN_DUE": "false",
}

# Runs `stockcast run` in this process and prints its wall time and peak resident memory.
MEASURED_RUN = """
import json, resource, sys, time
from stockcast.cli import main
sys.argv = ["stockcast", "run"]
start = time.perf_counter()
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "code": code}), file=sys.stderr)
"""


def tickers_of(count: int) -> list[str]:
    import pandas as pd

    names = sorted(pd.read_parquet(PRICES, columns=["ticker"])["ticker"].astype(str).unique())
    return names[:count]


def environment(folder: Path, tickers: list[str], **extra: str) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items() if not key.startswith(("STOCKCAST_", "MLFLOW_"))}
    return {
        **keep,
        **LIGHT,
        "STOCKCAST_DATA_DIR": str(folder),
        "STOCKCAST_SOURCE": f"file:{PRICES}",
        "STOCKCAST_TICKERS": ",".join(tickers),
        "STOCKCAST_START_DATE": "2018-01-01",
        **extra,
    }


def measured_run(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_RUN], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    lines = done.stderr.strip().splitlines()
    try:
        figures = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        figures = {"code": done.returncode}
    if figures["code"] not in (0, None):  # a run that stopped early would pass for a fast one
        tail = "\n".join(lines[-6:])
        raise SystemExit(f"`stockcast run` exited {figures['code']}: {tail}")
    return dict(figures)


def cycle(count: int) -> dict[str, float]:
    tickers = tickers_of(count)
    with tempfile.TemporaryDirectory() as folder:
        env = environment(Path(folder), tickers)
        first = measured_run(env)
        second = measured_run(env)
    return {
        "tickers": len(tickers),
        "first_seconds": first["seconds"],
        "first_peak_mb": first["peak_mb"],
        "daily_seconds": second["seconds"],
        "daily_peak_mb": second["peak_mb"],
    }


def dask_training(workers: int) -> float:
    """Seconds to train the configured tickers (features already in the store) on a
    LocalCluster of ``workers`` single-threaded processes."""
    from distributed import LocalCluster

    from stockcast.context import Context
    from stockcast.pipeline import train_many
    from stockcast.settings import load_settings

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        settings = load_settings(dask_address=cluster.scheduler_address)
        context = Context(settings)
        start = time.perf_counter()
        reports, failures = train_many(context, settings.tickers, force=True)
        seconds = time.perf_counter() - start
    if failures:  # a failed ticker finishes early and would flatter the speed-up
        raise SystemExit(f"{len(failures)} ticker(s) failed to train: {next(iter(failures.items()))}")
    print(f"  {workers} worker(s): {len(reports)} tickers trained in {seconds:.1f} s")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500")
    parser.add_argument("--train-tickers", type=int, default=32)
    parser.add_argument("--skip-cycle", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    figures: list[Figure] = []
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    if not args.skip_cycle:
        results = [cycle(int(size)) for size in args.sizes.split(",")]
        print(
            "daily cycle (`stockcast run`, file source, naive/drift, 60-day backtests, no Evidently reports):"
        )
        for result in results:
            n = result["tickers"]
            print(
                f"  {n:4d} tickers  first run {result['first_seconds']:7.1f} s ({result['first_seconds'] / n:5.2f} s/ticker, "
                f"peak {result['first_peak_mb']:6.0f} MB)   next day {result['daily_seconds']:6.1f} s "
                f"({result['daily_seconds'] / n:5.2f} s/ticker, peak {result['daily_peak_mb']:6.0f} MB)"
            )
        if len(results) == 2:
            small, large = results
            ratio = large["first_seconds"] / small["first_seconds"]
            daily = large["daily_seconds"] / small["daily_seconds"]
            scale = large["tickers"] / small["tickers"]
            sizes = f"{large['tickers']} vs {small['tickers']} tickers"
            for label, key, growth in (
                ("first run", "first_seconds", ratio),
                ("next day", "daily_seconds", daily),
            ):
                figures.append(
                    Figure(
                        "Daily cycle",
                        f"`stockcast run` {label}, {sizes} (linear: time ratio <= ticker ratio; ratio shown = {scale:.0f} / time ratio)",
                        f"{large[key]:.0f} s",
                        f"{small[key]:.0f} s",
                        scale / growth,
                        1.0,
                        f"time ratio {growth:.2f}; peak {large[key.replace('seconds', 'peak_mb')]:.0f} MB",
                    )
                )
    if not args.skip_dask:
        tickers = tickers_of(args.train_tickers)
        with tempfile.TemporaryDirectory() as folder:
            # Default candidates here: the backtests are the work being spread.
            env = environment(
                Path(folder), tickers, STOCKCAST_MODELS="naive,drift,ridge,random_forest,lightgbm,arima"
            )
            os.environ.update({key: value for key, value in env.items() if key.startswith("STOCKCAST_")})
            from stockcast.context import Context
            from stockcast.features.offline import refresh_feature_store
            from stockcast.ingest.ingest import ingest
            from stockcast.pipeline import train_many
            from stockcast.settings import load_settings

            context = Context(load_settings())
            ingest(context, tickers)
            refresh_feature_store(context)
            # Untimed: what only a first training pays (imports, the MLflow experiment, Feast's
            # first retrieval) would otherwise count against whichever measurement runs first.
            train_many(context, tickers[:2], force=True)
            print(
                f"training {len(tickers)} tickers (six candidates, 60-day backtests) on a Dask LocalCluster:"
            )
            one = dask_training(1)
            two = dask_training(2)
            figures.append(
                Figure(
                    "Training fan-out",
                    "training speed-up, 2 Dask workers vs 1",
                    f"{two:.0f} s with 2 workers",
                    f"{one:.0f} s with 1",
                    one / two,
                    1.7,
                    f"{len(tickers)} tickers, six candidates",
                )
            )
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
