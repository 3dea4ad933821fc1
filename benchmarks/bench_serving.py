"""Serving throughput and latency under a real HTTP load generator (wrk), side by side:

- stockcast's GET /predict/{ticker} as deployed: every configured horizon in one answer (the
  forecasts kept per champion version and online vector, read again every
  STOCKCAST_FEATURE_REFRESH_SECONDS), one row per horizon committed to the forecast log before
  the answer, metrics, access log, and the rate limiter on (at ``LOAD_RATE_LIMIT`` a minute, so
  that its bookkeeping runs for every request and the benchmark's one client is never refused),
- the same server with its forecast log switched off (benchmarks/unlogged_app.py): what the
  durable log costs,
- the same route uncached (STOCKCAST_FEATURE_REFRESH_SECONDS=0): each request reads the
  online features, checks their freshness and applies the champions,
- bare FastAPI JSON endpoints under the same uvicorn settings: ``async def`` (the framework's
  ceiling, the reference of the serving goals) and ``def`` (run in FastAPI's thread pool),
- `mlflow models serve` for the same champion (POST /invocations with one feature row: the
  model applied to every request).

All on 127.0.0.1, fixed concurrency and duration, one uvicorn worker each. Needs `wrk` (Debian
package). The uncached route and `mlflow models serve` are also loaded with one connection,
where no two stockcast requests can share a read of the online store.

Then the warm-up: a restart of `stockcast serve` (from the snapshot its last stop wrote) loaded
at once when /health turns ready, its first 10 s against the next 10 s; the cold start of
`stockcast serve`, process start to the first 200 from GET /predict/AAPL (the first forecast
answered) and to a ready /health, first without and then with the last run's snapshot (median
of --starts each); its resident memory after the load with the 4 sample tickers; and the same
throughput, latency and logging figures serving 50 tickers of ../shared/data (trained on the
naive and ridge candidates with 60-day backtests), wrk spreading its requests over all 50 with
a Lua script.

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
HERE = Path(__file__).resolve().parent
COLD_START_GOAL_SECONDS = 3.0
MEMORY_GOAL_MB = 400.0
THROUGHPUT_GOAL = 0.5  # GET /predict against the async bare endpoint
P99_GOAL = 1 / 3  # the bare endpoint's p99 / ours: ours within 3x
LOGGING_P50_GOAL = 1 / 1.1  # unlogged p50 / logged p50: logging adds at most 10 %
LOGGING_P99_GOAL = 1 / 1.2  # ... and at most 20 % to the p99
WARM_UP_THROUGHPUT_GOAL = 0.8  # the first 10 s of load after ready, against the next 10 s
WARM_UP_P99_GOAL = 0.5  # warm p99 / first-10-s p99: within 2x
LOAD_RATE_LIMIT = 100_000_000  # a minute: on, and far above what one client sends in a run
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


def run_wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, warm_up: bool = True
) -> dict[str, float]:
    """A 2-second warm-up at the same concurrency (unless ``warm_up`` is off), then the
    measured run."""
    threads = f"-t{min(2, connections)}"  # wrk wants at least one connection per thread
    if warm_up:
        first = ["wrk", threads, f"-c{connections}", "-d2s", url]
        if script:
            first[1:1] = ["-s", str(script)]
        subprocess.run(first, capture_output=True, check=True)
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


def uvicorn_command(app: str, port: int, factory: bool = False) -> list[str]:
    """uvicorn serving ``app`` from benchmarks/, quiet and without its own access log."""
    options = ["--factory"] if factory else []
    return [
        str(BIN / "uvicorn"),
        *options,
        app,
        "--app-dir",
        str(HERE),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def serve_command(port: int, unlogged: bool = False) -> list[str]:
    """`stockcast serve`, or the same app with its forecast log switched off."""
    if unlogged:
        return uvicorn_command("unlogged_app:create_app", port, factory=True)
    return [str(BIN / "stockcast"), "serve", "--port", str(port)]


def bare_command(port: int, app: str) -> list[str]:
    return uvicorn_command(f"bare_app:{app}", port)


def stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for server in servers:
        server.terminate()  # a graceful stop: stockcast writes its snapshot
    for server in servers:
        server.wait(timeout=60)


def spread_script(folder: Path, tickers: list[str]) -> Path:
    """A wrk Lua script sending each request to the next of ``tickers`` in turn."""
    script = folder / f"tickers-{len(tickers)}.lua"
    names = ", ".join(f'"{ticker}"' for ticker in tickers)
    script.write_text(
        f"local tickers = {{{names}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        '  return wrk.format(nil, "/predict/" .. tickers[(i % #tickers) + 1])\nend\n'
    )
    return script


def at_scale(
    count: int, base: dict[str, str], folder: Path, seconds: int, connections: int, bare_url: str
) -> dict[str, Any]:
    """Serving ``count`` tickers of ../shared/data: GET /predict logged and unlogged, and the
    bare async endpoint, each with wrk spreading its requests over all of them; the resident
    memory of `stockcast serve` after its load."""
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
    script = spread_script(folder, tickers)
    ports = {"logged": free_port(), "unlogged": free_port()}
    with open(folder / f"server-{count}.log", "w") as logs:
        servers = {
            name: start(serve_command(port, unlogged=name == "unlogged"), env, logs)
            for name, port in ports.items()
        }
        try:
            for port in ports.values():
                wait_until_ready(f"http://127.0.0.1:{port}/health", 120)
            loads = {
                name: run_wrk(f"http://127.0.0.1:{port}/predict/{tickers[0]}", seconds, connections, script)
                for name, port in ports.items()
            }
            loads["bare"] = run_wrk(bare_url, seconds, connections, script)
            rss, peak = resident_mb(servers["logged"].pid)
        finally:
            stop(list(servers.values()))
    failed = [name for name, load in loads.items() if load["non_2xx"]]
    if failed:
        raise SystemExit(
            f"non-2xx answers serving {count} tickers ({failed}); see {folder}/server-{count}.log"
        )
    return {"tickers": len(tickers), "rss": rss, "peak": peak, "loads": loads, "trained_seconds": trained}


def warm_up(
    env: dict[str, str], data: Path, seconds: int, connections: int, keep_snapshot: bool
) -> dict[str, Any]:
    """`stockcast serve` started and loaded at once when /health turns ready: the first
    ``seconds`` of load (no warm-up run before) and the next ``seconds``."""
    if not keep_snapshot:
        shutil.rmtree(data / "serving", ignore_errors=True)
    port = free_port()
    with open(data.parent / "warm-up.log", "a") as logs:
        server = start(serve_command(port), env, logs)
        try:
            ready = wait_until_ready(f"http://127.0.0.1:{port}/health", 120)
            url = f"http://127.0.0.1:{port}/predict/AAPL"
            first = run_wrk(url, seconds, connections, warm_up=False)
            warm = run_wrk(url, seconds, connections, warm_up=False)
        finally:
            stop([server])
    return {"ready": ready, "first": first, "warm": warm}


def spread(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def load_line(name: str, figures: dict[str, float]) -> str:
    return (
        f"  {name:44s} {figures['rps']:9.0f} req/s   p50 {figures['p50']:7.2f} ms   "
        f"p99 {figures['p99']:7.2f} ms   non-2xx {figures['non_2xx']:.0f}"
    )


# The figures' names, written out whole: run_all.py finds a missed goal's reason by its name.
FIGURE_NAMES = {
    "sample": (
        "GET /predict throughput vs a bare async FastAPI endpoint",
        "GET /predict p99 latency vs a bare async FastAPI endpoint (bare p99 / ours)",
        "GET /predict p50 with the forecast log vs without (without / with; goal: logging adds <= 10%)",
        "GET /predict p99 with the forecast log vs without (without / with; goal: logging adds <= 20%)",
    ),
    "spread": (
        "GET /predict throughput vs a bare async FastAPI endpoint, 50 tickers (wrk spreading requests over all of them)",
        "GET /predict p99 latency vs a bare async FastAPI endpoint (bare p99 / ours), 50 tickers (wrk spreading requests over all of them)",
        "GET /predict p50 with the forecast log vs without (without / with; goal: logging adds <= 10%), 50 tickers (wrk spreading requests over all of them)",
        "GET /predict p99 with the forecast log vs without (without / with; goal: logging adds <= 20%), 50 tickers (wrk spreading requests over all of them)",
    ),
}
WARM_UP_NAMES = {
    "restart": (
        "warm-up: throughput over the first 10 s of load from a ready /health vs the next 10 s, a restart from the last snapshot",
        "warm-up: p99 over the first 10 s of load vs the next 10 s (next / first), a restart from the last snapshot",
    ),
    "first": (
        "warm-up: throughput over the first 10 s of load from a ready /health vs the next 10 s, a first start (no snapshot)",
        "warm-up: p99 over the first 10 s of load vs the next 10 s (next / first), a first start (no snapshot)",
    ),
}


def serving_figures(
    area: str,
    names: tuple[str, str, str, str],
    ours: dict[str, float],
    bare: dict[str, float],
    unlogged: dict[str, float],
    note: str,
) -> list[Figure]:
    """GET /predict against the async bare endpoint, and logging on against off."""
    throughput, p99, log_p50, log_p99 = names
    return [
        Figure(
            area,
            throughput,
            f"{ours['rps']:,.0f} req/s",
            f"{bare['rps']:,.0f} req/s",
            ours["rps"] / bare["rps"],
            THROUGHPUT_GOAL,
            note,
        ),
        Figure(
            area,
            p99,
            f"{ours['p99']:.2f} ms",
            f"{bare['p99']:.2f} ms",
            bare["p99"] / ours["p99"],
            P99_GOAL,
            f"p50 {ours['p50']:.2f} vs {bare['p50']:.2f} ms",
        ),
        Figure(
            area,
            log_p50,
            f"{ours['p50']:.2f} ms",
            f"{unlogged['p50']:.2f} ms unlogged",
            unlogged["p50"] / ours["p50"],
            LOGGING_P50_GOAL,
            f"throughput {ours['rps']:,.0f} vs {unlogged['rps']:,.0f} req/s unlogged",
        ),
        Figure(
            area,
            log_p99,
            f"{ours['p99']:.2f} ms",
            f"{unlogged['p99']:.2f} ms unlogged",
            unlogged["p99"] / ours["p99"],
            LOGGING_P99_GOAL,
        ),
    ]


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
    seconds, connections = args.seconds, args.connections
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        env = {
            **os.environ,
            "STOCKCAST_DATA_DIR": str(data),
            "STOCKCAST_SOURCE": "sample",
            "STOCKCAST_MODELS": "naive,ridge",
            "STOCKCAST_TICKERS": "AAPL,MSFT,GOOG,IBM",
            "STOCKCAST_RATE_LIMIT_PER_MINUTE": str(LOAD_RATE_LIMIT),
            "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow serve starts uvicorn by name
        }
        env.pop("STOCKCAST_HORIZONS", None)  # the product's default horizons
        stockcast_run(env)
        names = ("stockcast", "unlogged", "uncached", "bare", "bare sync", "mlflow")
        ports = {name: free_port() for name in names}
        logs = open(Path(folder) / "servers.log", "w")  # noqa: SIM115 - closed below
        servers = {
            "stockcast": start(serve_command(ports["stockcast"]), env, logs),
            "unlogged": start(serve_command(ports["unlogged"], unlogged=True), env, logs),
            # Every request reads the online store and applies the champions (no kept forecast).
            "uncached": start(
                serve_command(ports["uncached"]), {**env, "STOCKCAST_FEATURE_REFRESH_SECONDS": "0"}, logs
            ),
            "bare": start(bare_command(ports["bare"], "app"), env, logs),
            "bare sync": start(bare_command(ports["bare sync"], "sync_app"), env, logs),
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
            for name in ("stockcast", "unlogged", "uncached"):
                wait_until_ready(f"http://127.0.0.1:{ports[name]}/health", 120)
            for name in ("bare", "bare sync"):
                wait_until_ready(url[name], 60)
            wait_until_ready(url["mlflow"], 180, "POST", invocation.encode())
            results = {
                "stockcast GET /predict/AAPL": run_wrk(url["stockcast"], seconds, connections),
                "stockcast, forecast log off": run_wrk(url["unlogged"], seconds, connections),
                "bare FastAPI, async def": run_wrk(url["bare"], seconds, connections),
                "bare FastAPI, def (thread pool)": run_wrk(url["bare sync"], seconds, connections),
                "stockcast uncached (refresh 0 s)": run_wrk(url["uncached"], seconds, connections),
                "mlflow models serve /invocations": run_wrk(url["mlflow"], seconds, connections, script),
                "stockcast uncached, 1 connection": run_wrk(url["uncached"], seconds, 1),
                "mlflow models serve, 1 connection": run_wrk(url["mlflow"], seconds, 1, script),
            }
            memory = {name: resident_mb(servers[name].pid) for name in ("stockcast", "bare")}
        finally:
            stop([server for name, server in servers.items() if name != "bare"])
        try:
            failed = [name for name, figures in results.items() if figures["non_2xx"]]
            if failed:  # fast errors would pass for fast answers
                print(
                    f"error: non-2xx answers under load from {', '.join(failed)}; see the servers' log",
                    file=sys.stderr,
                )
                return 1
            # The stop above wrote the snapshot a restart serves from.
            warm = {
                "restart": warm_up(env, data, seconds, connections, keep_snapshot=True),
                "first": warm_up(env, data, seconds, connections, keep_snapshot=False),
            }
            starts: dict[str, list[tuple[float, float]]] = {"first": [], "restart": []}
            for _ in range(args.starts):  # alternated, each restart from the snapshot the start before left
                starts["first"].append(cold_start(env, data, keep_snapshot=False))
                starts["restart"].append(cold_start(env, data, keep_snapshot=True))
            scale = at_scale(args.memory_tickers, env, Path(folder), seconds, connections, url["bare"])
        finally:
            stop([servers["bare"]])
            logs.close()
    print(
        f"serving under wrk: {connections} connections (unless stated), {seconds} s each, 1 uvicorn worker, "
        f"127.0.0.1; stockcast at its default horizons with the rate limiter at {LOAD_RATE_LIMIT:,} a minute"
    )
    for name, figures in results.items():
        print(load_line(name, figures))
    ours, unlogged, bare, bare_sync, uncached, mlflow_serve, uncached_one, mlflow_one = results.values()
    for kind, label in (("restart", "restart (last snapshot)"), ("first", "first start (no snapshot)")):
        first, later = warm[kind]["first"], warm[kind]["warm"]
        print(
            f"warm-up, {label}: ready in {warm[kind]['ready']:.2f} s; first {seconds} s of load "
            f"{first['rps']:.0f} req/s p99 {first['p99']:.2f} ms; next {seconds} s {later['rps']:.0f} req/s "
            f"p99 {later['p99']:.2f} ms"
        )
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
    n, loads = scale["tickers"], scale["loads"]
    print(
        f"serving {n} tickers (naive/ridge, 60-day backtests, trained in {scale['trained_seconds']:.0f} s), wrk over all {n}:"
    )
    for name, figures in loads.items():
        print(load_line(name, figures))
    print(f"  resident {scale['rss']:.0f} MB (peak {scale['peak']:.0f})")
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
    warm_figures = []
    for kind in ("restart", "first"):
        first, later = warm[kind]["first"], warm[kind]["warm"]
        throughput, p99 = WARM_UP_NAMES[kind]
        warm_figures += [
            Figure(
                area,
                throughput,
                f"{first['rps']:,.0f} req/s",
                f"{later['rps']:,.0f} req/s",
                first["rps"] / later["rps"],
                WARM_UP_THROUGHPUT_GOAL,
                f"ready {warm[kind]['ready']:.2f} s after the start; {seconds} s of load each",
            ),
            Figure(
                area,
                p99,
                f"{first['p99']:.2f} ms",
                f"{later['p99']:.2f} ms",
                later["p99"] / first["p99"],
                WARM_UP_P99_GOAL,
            ),
        ]
    logging_note = (
        f"rate limiter on ({LOAD_RATE_LIMIT:,} a minute, never refusing); "
        f"the sync `def` endpoint: {bare_sync['rps']:,.0f} req/s, p99 {bare_sync['p99']:.2f} ms"
    )
    emit(
        [
            *serving_figures(area, FIGURE_NAMES["sample"], ours, bare, unlogged, logging_note),
            Figure(
                area,
                "GET /predict throughput vs a bare FastAPI endpoint written as `def` (run in the thread pool; the reference before issue 23)",
                f"{ours['rps']:,.0f} req/s",
                f"{bare_sync['rps']:,.0f} req/s",
                ours["rps"] / bare_sync["rps"],
                None,
                f"p99 {ours['p99']:.2f} vs {bare_sync['p99']:.2f} ms",
            ),
            *serving_figures(
                area,
                FIGURE_NAMES["spread"],
                loads["logged"],
                loads["bare"],
                loads["unlogged"],
                f"{n} tickers of sp500_2018_2023 (--memory-tickers), naive/ridge, every configured horizon",
            ),
            *warm_figures,
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
                "resident memory after the load, 50 tickers of sp500_2018_2023 trained on the light candidate set (naive/ridge, 60-day backtests), load over all of them (400 MB / measured)",
                f"{scale['peak']:.0f} MB peak",
                f"goal 400 MB; 4 tickers {peak:.0f} MB",
                MEMORY_GOAL_MB / scale["peak"],
                1.0,
                f"{loads['logged']['rps']:,.0f} req/s over the {n} tickers, p99 {loads['logged']['p99']:.2f} ms",
            ),
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
