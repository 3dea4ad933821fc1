"""The image docker-compose runs, built and run (issue 20, part 3): `scripts/image.sh` builds
deploy/Dockerfile (on a machine that cannot pull the base image it first makes that base from
Debian packages), then a container of it serves the API on loopback only (`--network host`,
bound to 127.0.0.1), `stockcast run` on the bundled sample runs inside it as the image's
unprivileged user, /live, /ready and /predict/AAPL answer with the forecast that run made, and
`docker stop` ends it with exit code 0 well inside the grace period (no SIGKILL).

Outside the default suite (2 cores: ~5.5 min from nothing, the first build making the base and
downloading every dependency; ~2 min with the build cache, the daily cycle in the container
1-1.5 min of it): `make test-image` (STOCKCAST_IMAGE_TEST=1) runs it, and .ci/run after
`make test`. When no Docker daemon answers the test starts `dockerd` (as root;
no bridge, no iptables rules: every container here uses the host's loopback) and stops it at
the end.

The build needs the package index and Debian's mirror, so it runs outside the suite's network
guard; the container's Python processes run inside it (tests/netguard mounted, its log read at
the end), so the daily cycle and the API in the image reach nothing beyond loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.services import free_port

pytestmark = pytest.mark.skipif(
    os.environ.get("STOCKCAST_IMAGE_TEST") != "1",
    reason="builds and runs the Docker image (minutes): make test-image",
)

ROOT = Path(__file__).resolve().parents[2]
TAG = os.environ.get("STOCKCAST_IMAGE", "stockcast:latest")
UID = 10001  # the Dockerfile's `stockcast` user
GRACE_SECONDS = 30  # docker stop's wait before SIGKILL


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], check=False, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args[:3])} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def _daemon_answers() -> bool:
    try:
        return (
            subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=30).returncode == 0
        )
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker daemon: the running one, or one started here and stopped at the end."""
    if shutil.which("docker") is None:
        pytest.fail("no docker command: install Debian's docker.io (make test-image does, as root)")
    if _daemon_answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.fail("no Docker daemon answers, and starting one needs root and dockerd (docker.io)")
    log_path = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not _daemon_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=30)


@pytest.fixture(scope="module")
def image(docker_daemon: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`scripts/image.sh` (what `make image` runs), timed; the image's configuration."""
    environment = {name: value for name, value in os.environ.items() if name != "NETWORK_GUARD_LOG"}
    environment["STOCKCAST_IMAGE"] = TAG
    log_path = tmp_path_factory.mktemp("image") / "build.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        built = subprocess.run(
            ["bash", str(ROOT / "scripts" / "image.sh")],
            check=False,
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=3600,
        )
    seconds = time.monotonic() - started
    if built.returncode != 0:
        pytest.fail(
            f"scripts/image.sh failed ({built.returncode}):\n{log_path.read_text(errors='replace')[-5000:]}"
        )
    inspected = json.loads(_docker("image", "inspect", TAG).stdout)[0]
    print(f"\nimage {TAG}: built in {seconds:.0f} s, {inspected['Size'] / 1e6:.0f} MB")
    return inspected


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"null")
    except (OSError, ValueError):
        return 0, None


def _wait_for(port: int, path: str, status: int, container: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        code, body = _get(port, path)
        if code == status:
            return body
        if time.monotonic() > deadline:
            logs = _docker("logs", "--tail", "60", container, check=False)
            pytest.fail(
                f"{path} answered {code} {body} after {seconds:.0f} s, not {status}:\n"
                f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
            )
        running = _docker("inspect", "--format", "{{.State.Running}}", container, check=False)
        if running.stdout.strip() != "true":
            logs = _docker("logs", "--tail", "60", container, check=False)
            pytest.fail(f"the container stopped before {path} answered {status}:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


def test_the_image_runs_as_its_unprivileged_user_with_every_role_importable(image: dict[str, Any]) -> None:
    """Every module of stockcast and what each compose role starts (API, dashboard, Prefect
    worker, MLflow server, migrations) import in the image, offline: nothing the slimming
    removed is needed."""
    assert image["Config"]["User"] == "stockcast"
    assert image["Config"]["Cmd"] == ["stockcast", "serve"]
    script = (
        "import importlib, os, pkgutil, stockcast\n"
        "names = [m.name for m in pkgutil.walk_packages(stockcast.__path__, 'stockcast.')\n"
        "         if m.name != 'stockcast.dashboard.app' and '.migrations.' not in m.name]\n"
        "for name in names: importlib.import_module(name)\n"
        "import alembic.command, mlflow.server, prefect.flows, psycopg, boto3, streamlit, uvicorn\n"
        "print(os.getuid(), len(names))\n"
    )
    done = _docker("run", "--rm", "--network", "none", TAG, "python", "-c", script, timeout=600)
    uid, modules = done.stdout.split()
    assert int(uid) == UID and int(modules) > 30


def test_the_container_runs_the_daily_cycle_serves_its_forecast_and_stops_cleanly(
    image: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    guard = tmp_path / "guard"
    guard.mkdir()
    guard.chmod(0o777)
    (guard / "attempts.log").touch()
    (guard / "attempts.log").chmod(0o666)  # written by the container's user
    name = f"stockcast-image-test-{os.getpid()}"
    _docker(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",  # nothing published: the API binds 127.0.0.1 of this machine
        "--env",
        "STOCKCAST_HOST=127.0.0.1",
        "--env",
        f"STOCKCAST_PORT={port}",
        "--env",
        "STOCKCAST_SOURCE=sample",
        "--env",
        "STOCKCAST_CHAMPION_REFRESH_SECONDS=1",
        "--env",
        "PYTHONPATH=/netguard",
        "--env",
        "NETWORK_GUARD_LOG=/guard/attempts.log",
        "--volume",
        f"{ROOT / 'tests' / 'netguard'}:/netguard:ro",
        "--volume",
        f"{guard}:/guard",
        TAG,  # its own command: stockcast serve
    )
    try:
        assert _wait_for(port, "/live", 200, name, seconds=180) == {"status": "alive"}
        status, before = _get(port, "/ready")
        assert status == 503 and before["champions"] == {}  # nothing trained yet

        # The unprivileged user, for the server (PID 1) and for what runs beside it.
        assert _docker("exec", name, "id", "-u").stdout.strip() == str(UID)
        server = _docker("exec", name, "cat", "/proc/1/status").stdout
        assert f"Uid:\t{UID}\t" in server

        started = time.monotonic()
        cycle = _docker("exec", name, "stockcast", "run", timeout=1800, check=False)
        assert cycle.returncode == 0, cycle.stdout[-4000:] + cycle.stderr[-4000:]
        assert "Traceback" not in cycle.stdout + cycle.stderr
        print(f"\nstockcast run in the container: {time.monotonic() - started:.0f} s")
        assert _docker("exec", name, "stat", "-c", "%u", "/data/stockcast.db").stdout.strip() == str(UID)

        ready = _wait_for(port, "/ready", 200, name, seconds=120)
        assert ready["status"] == "ok" and "AAPL" in ready["champions"]
        status, forecast = _get(port, "/predict/AAPL")
        assert status == 200, forecast
        assert forecast["ticker"] == "AAPL"
        assert forecast["model"]["version"] == ready["champions"]["AAPL"]
        lower, upper = forecast["interval"]["lower"], forecast["interval"]["upper"]
        assert lower < forecast["predicted_close"] < upper
        # The forecast the daily cycle made and logged in the container is the one served.
        status, logged = _get(port, "/predictions?ticker=AAPL&limit=1000")
        assert status == 200
        made = [row for row in logged["items"] if row["as_of"] == forecast["as_of"]]
        assert made, f"no logged AAPL forecast as of {forecast['as_of']}"
        assert made[0]["target_date"] == forecast["target_date"]
        assert made[0]["predicted_close"] == pytest.approx(forecast["predicted_close"])
        assert made[0]["model_version"] == forecast["model"]["version"]

        started = time.monotonic()
        _docker("stop", "--time", str(GRACE_SECONDS), name, timeout=GRACE_SECONDS + 60)
        stopping = time.monotonic() - started
        state = json.loads(_docker("inspect", "--format", "{{json .State}}", name).stdout)
        assert state["ExitCode"] == 0, state  # 137 would be the SIGKILL after the grace period
        assert not state["OOMKilled"]
        assert stopping < GRACE_SECONDS - 5, f"docker stop took {stopping:.1f} s"
        logs = _docker("logs", name)
        assert "Traceback" not in logs.stdout + logs.stderr

        attempts = (guard / "attempts.log").read_text()
        assert not attempts, f"the container tried to leave loopback:\n{attempts[:4000]}"
    finally:
        with contextlib.suppress(Exception):
            _docker("rm", "--force", "--volumes", name, check=False)
