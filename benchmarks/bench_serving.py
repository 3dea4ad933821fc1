"""Serving throughput and latency under a real HTTP load generator (wrk), side by side:

- stockcast's GET /predict/{ticker} as deployed: the forecast kept per champion version and
  online vector (the forecast cache, read again every STOCKCAST_FEATURE_REFRESH_SECONDS),
  logged before it is answered, metrics,
- the same route uncached (STOCKCAST_FEATURE_REFRESH_SECONDS=0): each request reads the
  online features, checks their freshness and applies the champion,
- a bare FastAPI JSON endpoint under the same uvicorn settings,
- `mlflow models serve` for the same champion (POST /invocations with one feature row: the
  model applied to every request).

All on 127.0.0.1, fixed concurrency and duration. Needs `wrk` (Debian package). The uncached
route and `mlflow models serve` are also loaded with one connection, where no two stockcast
requests can share a read of the online store.

Then the cold start of `stockcast serve`, process start to the first 200 from
GET /predict/AAPL (the first forecast answered) and to a ready /health, first without and
then with the last run's snapshot (median of --starts each); its resident memory after the
load with the 4 sample tickers, and again serving 50 tickers of ../shared/data (trained on
the naive and ridge candidates with 60-day backtests, loaded over all 50).

    .venv/bin/python benchmarks/bench_serving.py [--seconds 10] [--connections 32] [--starts 3]
        [--memory-tickers 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from figures import Figure, emit

BIN = Path(sys.executable).parent
COLD_START_GOAL_SECONDS = 3.0
MEMORY_GOAL_MB = 400.0
ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT.parent / "shared" / "data" / "sp500_2018_2023.parquet"
# The 50-ticker served set: the sample's candidates, on short backtests so it trains quickly.
MEMORY_SET = {
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
    "STOCKCAST_REPORTS_WHEN_DUE": "false",
    "STOCKCAST_START_DATE": "2018-01-01",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(
    url: str,
    deadline_seconds: float,
    method: str = "GET",
    body: bytes | None = None,
    clock_start: float | None = None,
) -> float:
    start = clock_start if clock_start is not None else time.perf_counter()
    while time.perf_counter() - start < deadline_seconds:
        try:
            request = urllib.request.Request(
                url, data=body, method=method, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{url} was not ready within {deadline_seconds} s")


def run_wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict[str, float]:
    """A 2-second warm-up at the same concurrency, then the measured run."""
    threads = f"-t{min(2, connections)}"  # wrk wants at least one connection per thread
    warm_up = ["wrk", threads, f"-c{connections}", "-d2s", url]
    if script:
        warm_up[1:1] = ["-s", str(script)]
    subprocess.run(warm_up, capture_output=True, check=True)
    command = ["wrk", threads, f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def latency_ms(percent: str) -> float:
        value, unit = re.search(rf"\s{percent}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def resident_mb(pid: int) -> tuple[float, float]:
    """A process's resident memory now and at its peak, in MB (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cold_start(env: dict[str, str], data: Path, keep_snapshot: bool) -> tuple[float, float]:
    """Seconds from launching `stockcast serve` to the first 200 from GET /predict/AAPL (the
    first forecast answered), and to the first 200 from /health (ready), both polled from the
    launch on, side by side, so that neither poll waits for the other."""
    snapshot = data / "serving" / "snapshot.pkl"
    if not keep_snapshot:
        shutil.rmtree(data / "serving", ignore_errors=True)
    elif not snapshot.exists():  # a restart without one would pass for a first start
        raise SystemExit(f"no snapshot at {snapshot} to restart from")
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [str(BIN / "stockcast"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with ThreadPoolExecutor(max_workers=2) as pollers:
            first, ready = (
                pollers.submit(wait_until_ready, f"http://127.0.0.1:{port}{path}", 120, clock_start=start)
                for path in ("/predict/AAPL", "/health")
            )
            return first.result(), ready.result()
    finally:
        server.terminate()  # a graceful stop: it writes the snapshot that the next restart reads
        server.wait(timeout=60)


def start(
    command: list[str], env: dict[str, str], logs: Any, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=logs, stderr=logs)


def stockcast_run(env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(BIN / "stockcast"), "run"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"`stockcast run` exited {done.returncode}: {(done.stderr or done.stdout)[-800:]}")


def memory_at_scale(
    count: int, base: dict[str, str], folder: Path, seconds: int, connections: int
) -> dict[str, Any]:
    """Resident memory of `stockcast serve` serving ``count`` tickers of ../shared/data, after
    a load over all of them (wrk cycles through the tickers)."""
    import pandas as pd

    tickers = sorted(pd.read_parquet(PRICES, columns=["ticker"])["ticker"].astype(str).unique())[:count]
    data = folder / f"data-{count}"
    env = {
        **base,
        **MEMORY_SET,
        "STOCKCAST_DATA_DIR": str(data),
        "STOCKCAST_SOURCE": f"file:{PRICES}",
        "STOCKCAST_TICKERS": ",".join(tickers),
        "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
    }
    began = time.perf_counter()
    stockcast_run(env)
    trained = time.perf_counter() - began
    script = folder / f"tickers-{count}.lua"
    names = ", ".join(f'"{ticker}"' for ticker in tickers)
    script.write_text(
        f"local tickers = {{{names}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        '  return wrk.format(nil, "/predict/" .. tickers[(i % #tickers) + 1])\nend\n'
    )
    port = free_port()
    with open(folder / f"server-{count}.log", "w") as logs:
        server = start([str(BIN / "stockcast"), "serve", "--port", str(port)], env, logs)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/health", 120)
            load = run_wrk(f"http://127.0.0.1:{port}/predict/{tickers[0]}", seconds, connections, script)
            rss, peak = resident_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    if load["non_2xx"]:
        raise SystemExit(f"non-2xx answers serving {count} tickers; see {folder}/server-{count}.log")
    return {"tickers": len(tickers), "rss": rss, "peak": peak, "load": load, "trained_seconds": trained}


def spread(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--starts", type=int, default=3, help="cold starts of each kind (the median is the figure)"
    )
    parser.add_argument("--memory-tickers", type=int, default=50, help="tickers of the second served set")
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)")
        return 0
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        env = {
            **os.environ,
            "STOCKCAST_DATA_DIR": str(data),
            "STOCKCAST_SOURCE": "sample",
            "STOCKCAST_MODELS": "naive,ridge",
            "STOCKCAST_TICKERS": "AAPL,MSFT,GOOG,IBM",
            "STOCKCAST_RATE_LIMIT_PER_MINUTE": "0",
            "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow serve starts uvicorn by name
        }
        stockcast_run(env)
        ports = {name: free_port() for name in ("stockcast", "uncached", "bare", "mlflow")}
        logs = open(Path(folder) / "servers.log", "w")  # noqa: SIM115 - closed below
        servers = {
            "stockcast": start(
                [str(BIN / "stockcast"), "serve", "--port", str(ports["stockcast"])], env, logs
            ),
            # Every request reads the online store and applies the champion (no kept forecast).
            "uncached": start(
                [str(BIN / "stockcast"), "serve", "--port", str(ports["uncached"])],
                {**env, "STOCKCAST_FEATURE_REFRESH_SECONDS": "0"},
                logs,
            ),
            "bare": start(
                [
                    str(BIN / "uvicorn"),
                    "bare_app:app",
                    "--port",
                    str(ports["bare"]),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env,
                logs,
                cwd=ROOT / "benchmarks",
            ),
            "mlflow": start(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    "models:/stockcast-AAPL@champion",
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(ports["mlflow"]),
                ],
                env,
                logs,
            ),
        }
        try:
            from stockcast.context import Context
            from stockcast.features.feature_store import TIMESTAMP_FIELD
            from stockcast.registry.pyfunc_model import INPUT_COLUMNS
            from stockcast.settings import load_settings

            os.environ.update({k: v for k, v in env.items() if k.startswith(("STOCKCAST_", "MLFLOW_"))})
            online = (
                Context(load_settings())
                .feature_store.online(["AAPL"])
                .drop(columns=[TIMESTAMP_FIELD, "ticker"])
            )
            row = online[INPUT_COLUMNS]
            invocation = json.dumps(
                {"dataframe_split": {"columns": INPUT_COLUMNS, "data": row.to_numpy().tolist()}}
            )
            script = Path(folder) / "post.lua"
            script.write_text(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [==[{invocation}]==]\n"  # a level-2 long string: the JSON contains ]]
            )
            url = {name: f"http://127.0.0.1:{port}/predict/AAPL" for name, port in ports.items()}
            url["mlflow"] = f"http://127.0.0.1:{ports['mlflow']}/invocations"
            for name in ("stockcast", "uncached"):
                wait_until_ready(f"http://127.0.0.1:{ports[name]}/health", 120)
            wait_until_ready(url["bare"], 60)
            wait_until_ready(url["mlflow"], 180, "POST", invocation.encode())
            seconds, connections = args.seconds, args.connections
            results = {
                "stockcast GET /predict/AAPL": run_wrk(url["stockcast"], seconds, connections),
                "stockcast uncached (refresh 0 s)": run_wrk(url["uncached"], seconds, connections),
                "bare FastAPI JSON endpoint": run_wrk(url["bare"], seconds, connections),
                "mlflow models serve /invocations": run_wrk(url["mlflow"], seconds, connections, script),
                "stockcast uncached, 1 connection": run_wrk(url["uncached"], seconds, 1),
                "mlflow models serve, 1 connection": run_wrk(url["mlflow"], seconds, 1, script),
            }
            memory = {name: resident_mb(servers[name].pid) for name in ("stockcast", "bare")}
        finally:
            for server in servers.values():
                server.terminate()
            for server in servers.values():
                server.wait(timeout=60)
            logs.close()
        failed = [name for name, figures in results.items() if figures["non_2xx"]]
        if failed:  # fast errors would pass for fast answers
            print(
                f"error: non-2xx answers under load from {', '.join(failed)}; see the servers' log",
                file=sys.stderr,
            )
            return 1
        starts: dict[str, list[tuple[float, float]]] = {"first": [], "restart": []}
        for _ in range(args.starts):  # alternated, each restart from the snapshot the start before left
            starts["first"].append(cold_start(env, data, keep_snapshot=False))
            starts["restart"].append(cold_start(env, data, keep_snapshot=True))
        at_scale = memory_at_scale(args.memory_tickers, env, Path(folder), seconds, connections)
    print(
        f"serving under wrk: {connections} connections (unless stated), {seconds} s each, 1 uvicorn worker, 127.0.0.1"
    )
    for name, figures in results.items():
        print(
            f"  {name:34s} {figures['rps']:9.0f} req/s   p50 {figures['p50']:7.2f} ms   p99 {figures['p99']:7.2f} ms   non-2xx {figures['non_2xx']:.0f}"
        )
    ours, uncached, bare, mlflow_serve, uncached_one, mlflow_one = results.values()
    print(
        f"cold start of `stockcast serve`, {args.starts} of each, alternated (process start to the first 200 "
        "from GET /predict/AAPL, and from /health; goal: 3 s):"
    )
    medians = {}
    for kind, label in (("first", "first start (no snapshot)"), ("restart", "restart (last snapshot)")):
        firsts, readies = [each[0] for each in starts[kind]], [each[1] for each in starts[kind]]
        medians[kind] = statistics.median(firsts), statistics.median(readies), firsts, readies
        print(
            f"  {label:28s} first forecast median {medians[kind][0]:5.2f} s ({spread(firsts)})   "
            f"ready median {medians[kind][1]:5.2f} s ({spread(readies)})"
        )
    (rss, peak), (bare_rss, bare_peak) = memory["stockcast"], memory["bare"]
    print(
        f"resident memory after the load: stockcast {rss:.0f} MB (peak {peak:.0f}), bare FastAPI {bare_rss:.0f} MB"
    )
    n, load = at_scale["tickers"], at_scale["load"]
    print(
        f"serving {n} tickers (naive/ridge, 60-day backtests, trained in {at_scale['trained_seconds']:.0f} s), "
        f"wrk over all {n}: {load['rps']:.0f} req/s, p99 {load['p99']:.2f} ms; "
        f"resident {at_scale['rss']:.0f} MB (peak {at_scale['peak']:.0f})"
    )
    area = "Serving"
    names = {
        "first": (
            "cold start to the first forecast (a 200 from GET /predict/AAPL), first start (3 s / measured)",
            "cold start to ready, first start (3 s / measured)",
        ),
        "restart": (
            "cold start to the first forecast (a 200 from GET /predict/AAPL), restart with the last snapshot (3 s / measured)",
            "cold start to ready, restart with the last snapshot (3 s / measured)",
        ),
    }
    cold = []
    for kind, (to_forecast, to_ready) in names.items():
        first, ready, firsts, readies = medians[kind]
        cold += [
            Figure(
                area,
                to_forecast,
                f"{first:.2f} s",
                "goal 3 s",
                COLD_START_GOAL_SECONDS / first,
                1.0,
                f"median of {len(firsts)} starts: {spread(firsts)} s; ready (/health) {ready:.2f} s",
            ),
            Figure(
                area,
                to_ready,
                f"{ready:.2f} s",
                "goal 3 s",
                COLD_START_GOAL_SECONDS / ready,
                1.0,
                f"median of {len(readies)} starts: {spread(readies)} s; first forecast {first:.2f} s",
            ),
        ]
    emit(
        [
            Figure(
                area,
                "GET /predict throughput vs a bare FastAPI endpoint",
                f"{ours['rps']:,.0f} req/s",
                f"{bare['rps']:,.0f} req/s",
                ours["rps"] / bare["rps"],
                0.5,
            ),
            Figure(
                area,
                "GET /predict p99 latency vs a bare FastAPI endpoint (bare p99 / ours)",
                f"{ours['p99']:.2f} ms",
                f"{bare['p99']:.2f} ms",
                bare["p99"] / ours["p99"],
                1 / 3,
            ),
            Figure(
                area,
                "GET /predict throughput vs `mlflow models serve` (stockcast serves its kept forecast, "
                "the forecast cache; mlflow applies the model to every request)",
                f"{ours['rps']:,.0f} req/s",
                f"{mlflow_serve['rps']:,.0f} req/s",
                ours["rps"] / mlflow_serve["rps"],
                2.0,
            ),
            Figure(
                area,
                "GET /predict throughput uncached (STOCKCAST_FEATURE_REFRESH_SECONDS=0: online features "
                "read and champion applied per request) vs `mlflow models serve`, 1 connection each",
                f"{uncached_one['rps']:,.0f} req/s (p50 {uncached_one['p50']:.2f} ms)",
                f"{mlflow_one['rps']:,.0f} req/s (p50 {mlflow_one['p50']:.2f} ms)",
                uncached_one["rps"] / mlflow_one["rps"],
                None,
                f"at {connections} connections, where requests for one ticker share the read in flight: "
                f"{uncached['rps']:,.0f} vs {mlflow_serve['rps']:,.0f} req/s "
                f"({uncached['rps'] / mlflow_serve['rps']:.2f}x), p99 {uncached['p99']:.2f} vs "
                f"{mlflow_serve['p99']:.2f} ms",
            ),
            *cold,
            Figure(
                area,
                "resident memory after the load, 4 sample tickers (400 MB / measured)",
                f"{peak:.0f} MB peak",
                f"goal 400 MB; bare FastAPI {bare_peak:.0f} MB",
                MEMORY_GOAL_MB / peak,
                1.0,
            ),
            Figure(
                area,
                f"resident memory after the load, {n} tickers of sp500_2018_2023 trained on the light "
                "candidate set (naive/ridge, 60-day backtests), load over all of them (400 MB / measured)",
                f"{at_scale['peak']:.0f} MB peak",
                f"goal 400 MB; 4 tickers {peak:.0f} MB",
                MEMORY_GOAL_MB / at_scale["peak"],
                1.0,
                f"{load['rps']:,.0f} req/s over the {n} tickers, p99 {load['p99']:.2f} ms",
            ),
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
