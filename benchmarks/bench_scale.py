"""Scale: the daily cycle at 50 and 500 tickers, and training on a Dask LocalCluster with 1
and 2 workers. Prices from ../shared/data/sp500_2018_2023.parquet (501 tickers); skipped when
that file is absent.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 50,500] [--train-tickers 32] [--pairs 3]
        [--skip-cycle] [--skip-dask] [--full] [--json FILE]

Each cycle runs `stockcast run` twice in a fresh directory, each in its own process, so its
peak memory is its own: the first run ingests, materializes and trains every ticker; the
second is a day with nothing new, what a scheduled run costs when no retraining is due.
So that `make bench` stays under 25 minutes on 2 cores, its cycle runs a light configuration
(LIGHT: the naive and drift candidates on 60-day backtests, no Evidently reports; a report
costs about 2 s a ticker, the same for every ticker, so it adds a linear term). ``--full``
(`make bench-full`, hours on 2 cores) runs the cycle in the default configuration instead
(DEFAULT: six candidates, 250-day backtests refit every 20 days, reports when due) and no Dask
figure. Each figure names the configuration it ran.

The Dask figure uses all six candidates on 60-day backtests (the backtests are the work being
spread) and times --pairs pairs of trainings, the order alternated (1 worker then 2, 2 then 1,
1 then 2, ...), so neither worker count always runs first; the figure is the ratio of the
medians, with every run's time beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, emit

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT.parent / "shared" / "data" / "sp500_2018_2023.parquet"
SIX = "naive,drift,ridge,random_forest,lightgbm,arima"
LIGHT = {
    "STOCKCAST_MODELS": "naive,drift",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "250",
    "STOCKCAST_REPORTS_WHEN_DUE": "false",
}
# The defaults of Settings, spelled out so the figure can name them (checked in `describe`).
DEFAULT = {
    "STOCKCAST_MODELS": SIX,
    "STOCKCAST_BACKTEST_DAYS": "250",
    "STOCKCAST_REFIT_EVERY_DAYS": "20",
    "STOCKCAST_MIN_TRAIN_DAYS": "250",
    "STOCKCAST_REPORTS_WHEN_DUE": "true",
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


def describe(configuration: dict[str, str]) -> str:
    """The configuration as a figure names it, e.g. "naive/drift, 60-day backtests refit every
    60 days, reports off"; "default configuration: ..." only when every setting is Settings'
    default."""
    from stockcast.settings import Settings

    models = configuration["STOCKCAST_MODELS"].split(",")
    candidates = "six candidates" if configuration["STOCKCAST_MODELS"] == SIX else "/".join(models)
    text = (
        f"{candidates}, {configuration['STOCKCAST_BACKTEST_DAYS']}-day backtests refit every "
        f"{configuration['STOCKCAST_REFIT_EVERY_DAYS']} days, reports "
        f"{'on' if configuration['STOCKCAST_REPORTS_WHEN_DUE'] == 'true' else 'off'}"
    )
    fields = Settings.model_fields
    defaults = {
        "STOCKCAST_MODELS": ",".join(fields["models"].default),
        "STOCKCAST_BACKTEST_DAYS": str(fields["backtest_days"].default),
        "STOCKCAST_REFIT_EVERY_DAYS": str(fields["refit_every_days"].default),
        "STOCKCAST_MIN_TRAIN_DAYS": str(fields["min_train_days"].default),
        "STOCKCAST_REPORTS_WHEN_DUE": str(fields["reports_when_due"].default).lower(),
    }
    return f"default configuration: {text}" if configuration == defaults else text


def environment(
    folder: Path, tickers: list[str], configuration: dict[str, str] = LIGHT, **extra: str
) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items() if not key.startswith(("STOCKCAST_", "MLFLOW_"))}
    return {
        **keep,
        **configuration,
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


def cycle(count: int, configuration: dict[str, str]) -> dict[str, float]:
    tickers = tickers_of(count)
    with tempfile.TemporaryDirectory() as folder:
        env = environment(Path(folder), tickers, configuration)
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


def cycle_figures(sizes: list[int], configuration: dict[str, str]) -> list[Figure]:
    described = describe(configuration)
    results = []
    for size in sizes:
        results.append(cycle(size, configuration))
    print(f"daily cycle (`stockcast run`, file source, {described}):")
    for result in results:
        n = result["tickers"]
        print(
            f"  {n:4d} tickers  first run {result['first_seconds']:7.1f} s ({result['first_seconds'] / n:5.2f} s/ticker, "
            f"peak {result['first_peak_mb']:6.0f} MB)   next day {result['daily_seconds']:6.1f} s "
            f"({result['daily_seconds'] / n:5.2f} s/ticker, peak {result['daily_peak_mb']:6.0f} MB)"
        )
    if len(results) != 2:
        return []
    small, large = results
    scale = large["tickers"] / small["tickers"]
    sizes_text = f"{large['tickers']} vs {small['tickers']} tickers"
    figures = []
    for label, key in (("first run", "first_seconds"), ("next day", "daily_seconds")):
        growth = large[key] / small[key]
        figures.append(
            Figure(
                "Daily cycle",
                f"`stockcast run` {label}, {sizes_text}, {described} (linear: time ratio <= ticker "
                f"ratio; ratio shown = {scale:.0f} / time ratio)",
                f"{large[key]:.0f} s",
                f"{small[key]:.0f} s",
                scale / growth,
                1.0,
                f"time ratio {growth:.2f}; peak {large[key.replace('seconds', 'peak_mb')]:.0f} MB",
            )
        )
    return figures


def dask_figure(train_tickers: int, pairs: int) -> Figure:
    tickers = tickers_of(train_tickers)
    configuration = {**LIGHT, "STOCKCAST_MODELS": SIX}  # the backtests are the work being spread
    with tempfile.TemporaryDirectory() as folder:
        env = environment(Path(folder), tickers, configuration)
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
        described = describe(configuration).replace(", reports off", "")
        print(f"training {len(tickers)} tickers ({described}) on a Dask LocalCluster, {pairs} pairs:")
        times: dict[int, list[float]] = {1: [], 2: []}
        ratios = []
        for pair in range(pairs):
            order = (1, 2) if pair % 2 == 0 else (2, 1)
            timed = {workers: dask_training(workers) for workers in order}
            for workers, seconds in timed.items():
                times[workers].append(seconds)
            ratios.append(timed[1] / timed[2])
            print(f"  pair {pair + 1} ({order[0]} then {order[1]}): speed-up {ratios[-1]:.2f}x")
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(
        f"  median 1 worker {one:.1f} s (runs {', '.join(f'{t:.1f}' for t in times[1])}), "
        f"2 workers {two:.1f} s (runs {', '.join(f'{t:.1f}' for t in times[2])}): "
        f"ratio of medians {one / two:.2f}x, per pair {min(ratios):.2f}-{max(ratios):.2f}x"
    )
    return Figure(
        "Training fan-out",
        "training speed-up, 2 Dask workers vs 1",
        f"{two:.0f} s with 2 workers (median of {pairs}; runs {min(times[2]):.0f}-{max(times[2]):.0f} s)",
        f"{one:.0f} s with 1 (median of {pairs}; runs {min(times[1]):.0f}-{max(times[1]):.0f} s)",
        one / two,
        1.7,
        f"{len(tickers)} tickers, {described}; the ratio of the medians; {pairs} pairs, the order "
        f"alternated (1 then 2 workers, 2 then 1, ...), each pair's ratio "
        f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}x",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500")
    parser.add_argument("--train-tickers", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=3, help="Dask pairs, the order alternated")
    parser.add_argument("--skip-cycle", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument(
        "--full", action="store_true", help="the cycle in the default configuration, no Dask figure"
    )
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    figures: list[Figure] = []
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    sizes = [int(size) for size in args.sizes.split(",")]
    if not args.skip_cycle:
        figures += cycle_figures(sizes, DEFAULT if args.full else LIGHT)
    if not args.skip_dask and not args.full:
        figures.append(dask_figure(args.train_tickers, args.pairs))
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
