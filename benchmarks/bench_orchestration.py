"""Orchestration: the daily cycle as the Prefect `daily` flow against the same stage functions
called in a plain script (`pipeline.run_cycle`, what `stockcast run` calls), at 50 tickers of
../shared/data/sp500_2018_2023.parquet; skipped when that file is absent.

    .venv/bin/python benchmarks/bench_orchestration.py [--tickers 50] [--pairs 3] [--json FILE]

As in production, a Prefect server is already running: a real `prefect server start` on
127.0.0.1 (its own PREFECT_HOME, a SQLite database in a temporary folder) is started first
and PREFECT_API_URL points every flow run at it. Its start (process start to a 200 from
/api/health) is its own reported figure, outside the flow's time; then one untimed flow run on 2
tickers, so that the server has run the flow before, as in production (a fresh server's first
requests import its handlers and create the flow's records: the first timed flow run took 1.28x
the script's where the next took 1.05x).

Each run starts from a fresh, empty data folder, so the flow and the script do identical work:
ingest the 50 tickers from the file, build and materialize the features, train every ticker,
forecast, score, monitor. (The alternative, one store after an untimed warm-up, would time a
day on which nothing is due: mostly fixed overhead, and the second run would find what the
first one left, which is not the same work.) The configuration is the light one of
bench_scale.py (naive and drift on 60-day backtests, no Evidently reports), so that a pair of
runs takes about a minute on 2 cores.

Each run is its own process; the timer starts after the imports (stockcast's stages in both,
Prefect and the flows module in the flow's) and stops when `run_cycle` or the flow returns.
The imports and the whole process's wall time are printed beside it. --pairs pairs run with
the order alternated (script then flow, flow then script, ...); the figure is the ratio of the
medians, each pair's ratio beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from figures import Figure, emit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PRICES = ROOT.parent / "shared" / "data" / "sp500_2018_2023.parquet"
GOAL = 1.10  # the flow may take at most 10% longer than the plain script
FLOW_VS_SCRIPT = "daily cycle at 50 tickers as the Prefect `daily` flow vs the same stages in a plain script (`run_cycle`), Prefect server running (script time / flow time; goal: the flow within 1.10x)"
LIGHT = {  # bench_scale.py's light configuration
    "STOCKCAST_MODELS": "naive,drift",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "250",
    "STOCKCAST_REPORTS_WHEN_DUE": "false",
}

# One daily cycle in this process, timed after the imports; its figures go to stderr as JSON.
MEASURED = """
import json, sys, time
began = time.perf_counter()
mode = sys.argv[1]
import stockcast.pipeline
if mode == "flow":
    from stockcast.orchestration.flows import daily
else:
    from stockcast.context import Context
    from stockcast.pipeline import run_cycle
    from stockcast.settings import load_settings
imported = time.perf_counter()
if mode == "flow":
    result = daily()
    forecasts, failures = len(result["forecasts"]), result["failures"]
else:
    context = Context(load_settings())
    report = run_cycle(context, context.settings.tickers)
    forecasts, failures = len(report.forecasts), report.failures
done = time.perf_counter()
print(json.dumps({"imports": imported - began, "seconds": done - imported, "forecasts": forecasts,
                  "failures": failures}), file=sys.stderr)
"""


def tickers_of(count: int) -> list[str]:
    import pandas as pd

    names = sorted(pd.read_parquet(PRICES, columns=["ticker"])["ticker"].astype(str).unique())
    return names[:count]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prefect_environment(home: Path, port: int | None = None) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env = {
        **keep,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if port is not None:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    return env


def start_server(home: Path, deadline_seconds: float = 180.0) -> tuple[subprocess.Popen[bytes], int, float]:
    """`prefect server start` on a free loopback port: the process, its port and the seconds
    from process start to a 200 from /api/health."""
    port = free_port()
    log = (home / "server.log").open("wb")
    began = time.perf_counter()
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=prefect_environment(home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, port, time.perf_counter() - began
        except OSError:
            pass
        if server.poll() is not None or time.perf_counter() - began > deadline_seconds:
            stop_server(server)
            tail = (home / "server.log").read_text(errors="replace")[-800:]
            raise SystemExit(f"the Prefect server did not start: {tail}")
        time.sleep(0.1)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def cycle(mode: str, tickers: list[str], home: Path, port: int) -> dict[str, float]:
    """One daily cycle on a fresh data folder, in its own process."""
    keep = {key: value for key, value in os.environ.items() if not key.startswith(("STOCKCAST_", "MLFLOW_"))}
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **keep,
            **prefect_environment(home, port),
            **LIGHT,
            "STOCKCAST_DATA_DIR": folder,
            "STOCKCAST_SOURCE": f"file:{PRICES}",
            "STOCKCAST_TICKERS": ",".join(tickers),
            "STOCKCAST_START_DATE": "2018-01-01",
        }
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", MEASURED, mode],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - began
    lines = done.stderr.strip().splitlines()
    try:
        figures = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"the {mode} run exited {done.returncode}: {done.stderr.strip()[-800:]}") from None
    if done.returncode != 0 or figures["failures"] or figures["forecasts"] != len(tickers):
        # a run that failed a ticker did less work and would pass for a fast one
        raise SystemExit(f"the {mode} run did not forecast every ticker: {figures}")
    figures["wall"] = wall
    name = "flow" if mode == "flow" else "script"
    print(
        f"  {name:6s} {figures['seconds']:6.1f} s (imports {figures['imports']:.1f} s before the timer, "
        f"process {wall:.1f} s)",
        flush=True,
    )
    return dict(figures)


def measure(count: int, pairs: int) -> list[Figure]:
    tickers = tickers_of(count)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        server, port, started = start_server(home)
        try:
            print(f"Prefect server on 127.0.0.1:{port}: {started:.1f} s to a healthy /api/health")
            # Untimed: a server that has run the flow before, as in production (its first
            # requests import its handlers and create the flow's records).
            print("warm-up, untimed:", flush=True)
            cycle("flow", tickers[:2], home, port)
            print(f"daily cycle, {len(tickers)} tickers, fresh stores, {pairs} pairs (order alternated):")
            runs: dict[str, list[dict[str, float]]] = {"script": [], "flow": []}
            ratios = []
            for pair in range(pairs):
                order = ("script", "flow") if pair % 2 == 0 else ("flow", "script")
                timed = {mode: cycle(mode, tickers, home, port) for mode in order}
                for mode, figures in timed.items():
                    runs[mode].append(figures)
                ratios.append(timed["flow"]["seconds"] / timed["script"]["seconds"])
                print(f"  pair {pair + 1} ({order[0]} then {order[1]}): flow / script {ratios[-1]:.3f}")
            recorded = flow_runs(port) - 1  # the warm-up's
            if recorded != pairs:
                raise SystemExit(f"the server recorded {recorded} timed flow runs, not the {pairs} made")
        finally:
            stop_server(server)
    script = statistics.median(run["seconds"] for run in runs["script"])
    flow = statistics.median(run["seconds"] for run in runs["flow"])
    flow_imports = statistics.median(run["imports"] for run in runs["flow"])
    script_imports = statistics.median(run["imports"] for run in runs["script"])
    flow_wall = statistics.median(run["wall"] for run in runs["flow"])
    script_wall = statistics.median(run["wall"] for run in runs["script"])
    print(
        f"  median: flow {flow:.1f} s, script {script:.1f} s: {flow / script:.3f}x "
        f"(whole processes: {flow_wall:.1f} s against {script_wall:.1f} s, {flow_wall / script_wall:.3f}x)"
    )
    configuration = "naive/drift, 60-day backtests refit every 60 days, reports off"
    return [
        Figure(
            "Orchestration",
            FLOW_VS_SCRIPT,
            f"{flow:.1f} s flow",
            f"{script:.1f} s script",
            script / flow,
            1 / GOAL,
            f"{len(tickers)} tickers; the flow takes {flow / script:.3f}x the script's time (each pair "
            f"{', '.join(f'{ratio:.3f}' for ratio in ratios)}); medians of {pairs} runs each on fresh "
            f"stores, order alternated; {configuration}; imports before the timer: flow "
            f"{flow_imports:.1f} s, script {script_imports:.1f} s; whole processes {flow_wall:.1f} s and "
            f"{script_wall:.1f} s; {recorded} flow runs recorded by the server",
        ),
        Figure(
            "Orchestration",
            "Prefect server start (`prefect server start`, process start to a healthy /api/health)",
            f"{started:.1f} s",
            "reported",
            1.0,
            None,
            "started once before the runs, as in production; not part of the flow's time",
        ),
    ]


def flow_runs(port: int) -> int:
    """How many flow runs the server has recorded (the flows did report to it)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/flow_runs/count",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(json.loads(answer.read()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=3, help="pairs of runs, the order alternated")
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    emit(measure(args.tickers, args.pairs), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
