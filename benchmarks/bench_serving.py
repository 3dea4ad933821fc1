"""Serving throughput and latency under a real HTTP load generator (wrk), side by side:

- stockcast's GET /predict/{ticker} (online features, champion, forecast logged, metrics),
- a bare FastAPI JSON endpoint under the same uvicorn settings,
- `mlflow models serve` for the same champion (POST /invocations with one feature row).

All on 127.0.0.1, fixed concurrency and duration. Needs `wrk` (Debian package).

Then the cold start of `stockcast serve` (process start to a ready /health and to a first
forecast), first without and then with the last run's snapshot, and its resident memory.

    .venv/bin/python benchmarks/bench_serving.py [--seconds 10] [--connections 32] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from figures import Figure, emit

BIN = Path(sys.executable).parent
COLD_START_GOAL_SECONDS = 3.0
MEMORY_GOAL_MB = 400.0
ROOT = Path(__file__).resolve().parents[1]


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
    warm_up = ["wrk", "-t2", f"-c{connections}", "-d2s", url]
    if script:
        warm_up[1:1] = ["-s", str(script)]
    subprocess.run(warm_up, capture_output=True, check=True)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
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
    """Seconds from launching `stockcast serve` to a ready /health, and to a first forecast."""
    if not keep_snapshot:
        shutil.rmtree(data / "serving", ignore_errors=True)
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [str(BIN / "stockcast"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}/health", 120, clock_start=start)
        first = wait_until_ready(f"http://127.0.0.1:{port}/predict/AAPL", 120, clock_start=start)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return ready, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)")
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
        subprocess.run([str(BIN / "stockcast"), "run"], env=env, check=True, capture_output=True)
        ports = {name: free_port() for name in ("stockcast", "bare", "mlflow")}
        logs = open(Path(folder) / "servers.log", "w")  # noqa: SIM115 - closed below
        servers = [
            subprocess.Popen(
                [str(BIN / "stockcast"), "serve", "--port", str(ports["stockcast"])],
                env=env,
                stdout=logs,
                stderr=logs,
            ),
            subprocess.Popen(
                [
                    str(BIN / "uvicorn"),
                    "bare_app:app",
                    "--port",
                    str(ports["bare"]),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env=env,
                cwd=ROOT / "benchmarks",
                stdout=logs,
                stderr=logs,
            ),
            subprocess.Popen(
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
                env=env,
                stdout=logs,
                stderr=logs,
            ),
        ]
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
            wait_until_ready(f"http://127.0.0.1:{ports['stockcast']}/health", 120)
            wait_until_ready(f"http://127.0.0.1:{ports['bare']}/predict/AAPL", 60)
            wait_until_ready(
                f"http://127.0.0.1:{ports['mlflow']}/invocations", 180, "POST", invocation.encode()
            )
            results = {
                "stockcast GET /predict/AAPL": run_wrk(
                    f"http://127.0.0.1:{ports['stockcast']}/predict/AAPL", args.seconds, args.connections
                ),
                "bare FastAPI JSON endpoint": run_wrk(
                    f"http://127.0.0.1:{ports['bare']}/predict/AAPL", args.seconds, args.connections
                ),
                "mlflow models serve /invocations": run_wrk(
                    f"http://127.0.0.1:{ports['mlflow']}/invocations", args.seconds, args.connections, script
                ),
            }
            memory = {"stockcast": resident_mb(servers[0].pid), "bare": resident_mb(servers[1].pid)}
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)
            logs.close()
        starts = {
            "first start (no snapshot)": cold_start(env, data, keep_snapshot=False),
            "restart (last snapshot)": cold_start(env, data, keep_snapshot=True),
        }
    print(
        f"serving under wrk: {args.connections} connections, {args.seconds} s each, 1 uvicorn worker, 127.0.0.1"
    )
    for name, figures in results.items():
        print(
            f"  {name:34s} {figures['rps']:9.0f} req/s   p50 {figures['p50']:7.2f} ms   p99 {figures['p99']:7.2f} ms   non-2xx {figures['non_2xx']:.0f}"
        )
    failed = [name for name, figures in results.items() if figures["non_2xx"]]
    if failed:  # fast errors would pass for fast answers
        print(
            f"error: non-2xx answers under load from {', '.join(failed)}; see the servers' log",
            file=sys.stderr,
        )
        return 1
    ours, bare, mlflow_serve = results.values()
    print("cold start of `stockcast serve` (process start to a 200 from /health, then from /predict/AAPL):")
    for name, (ready, first) in starts.items():
        print(f"  {name:34s} ready {ready:5.2f} s   first forecast {first:5.2f} s   (goal: ready <= 3 s)")
    (rss, peak), (bare_rss, bare_peak) = memory["stockcast"], memory["bare"]
    print(
        f"resident memory after the load: stockcast {rss:.0f} MB (peak {peak:.0f}), bare FastAPI {bare_rss:.0f} MB"
    )
    first_ready = starts["first start (no snapshot)"][0]
    restart_ready = starts["restart (last snapshot)"][0]
    area = "Serving"
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
                "GET /predict throughput vs `mlflow models serve`",
                f"{ours['rps']:,.0f} req/s",
                f"{mlflow_serve['rps']:,.0f} req/s",
                ours["rps"] / mlflow_serve["rps"],
                2.0,
            ),
            Figure(
                area,
                "cold start to ready, first start (3 s / measured)",
                f"{first_ready:.2f} s",
                "goal 3 s",
                COLD_START_GOAL_SECONDS / first_ready,
                1.0,
                f"first forecast {starts['first start (no snapshot)'][1]:.2f} s",
            ),
            Figure(
                area,
                "cold start to ready, restart with the last snapshot (3 s / measured)",
                f"{restart_ready:.2f} s",
                "goal 3 s",
                COLD_START_GOAL_SECONDS / restart_ready,
                1.0,
                f"first forecast {starts['restart (last snapshot)'][1]:.2f} s",
            ),
            Figure(
                area,
                "resident memory after the load (400 MB / measured)",
                f"{peak:.0f} MB peak",
                f"goal 400 MB; bare FastAPI {bare_peak:.0f} MB",
                MEMORY_GOAL_MB / peak,
                1.0,
            ),
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
