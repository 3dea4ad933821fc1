"""Training jobs that survive the processes running them (issue 20), with real processes: a
real redis-server, real `stockcast worker` processes (Celery's prefork pool) and real API
processes (`stockcast serve`), each SIGKILLed or restarted while a job is held mid-training at
a fail point. Every job ends succeeded (run again where its process died), is never left
`running` by a dead process, and a live process's job is never taken from it."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SAMPLE_FAST, clean_environment
from tests.services import free_port, wait_until

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.ingest.ingest import ingest
from stockcast.settings import load_settings

STOCKCAST = str(Path(sys.executable).parent / "stockcast")
KEY = "jobs-test-key-0123456789"
HOST = socket.gethostname()
FAST = {
    **SAMPLE_FAST,
    "STOCKCAST_TICKERS": "AAPL,MSFT",
    "STOCKCAST_API_KEYS": KEY,
    # A dead process's job is noticed 1.5 s after its last beat, its leases lapse in 2 s.
    "STOCKCAST_JOB_HEARTBEAT_SECONDS": "0.5",
    "STOCKCAST_TRAINING_LEASE_SECONDS": "2",
}
_databases = itertools.count(1)


class Service:
    """A `stockcast` process in its own session (so its children can be killed with it), its
    output in a file."""

    def __init__(self, arguments: list[str], env: dict[str, str], folder: Path, name: str):
        self.log = folder / f"{name}.log"
        self.process = subprocess.Popen(
            [STOCKCAST, *arguments],
            env=env,
            cwd=folder,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def reached(self, point: str) -> int:
        return self.output().count(f"failpoint {point} reached")

    def kill_all(self) -> None:
        """SIGKILL the process and every process it started: a machine lost, no cleanup."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        return self.process.returncode


class Api(Service):
    def __init__(self, env: dict[str, str], folder: Path, name: str):
        self.port = free_port()
        super().__init__(["serve", "--port", str(self.port)], env, folder, name)
        wait_until(lambda: self._answers("/live"), f"the API ({self.log})", self.process, seconds=120)

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2):
                return True
        except OSError:
            return False

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"X-API-Key": KEY, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def train(self, tickers: list[str]) -> dict[str, Any]:
        status, job = self.request("POST", "/train", {"tickers": tickers})
        assert status == 202, job
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        status, job = self.request("GET", f"/jobs/{job_id}")
        assert status == 200, job
        return job


@pytest.fixture
def site(isolated_environment, monkeypatch):
    """Sample bars and features in a fresh store; ``env(**more)`` is a process's environment."""
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    context = Context(load_settings())
    assert not ingest(context, ["AAPL", "MSFT"]).failures
    refresh_feature_store(context)

    def env(**more: str) -> dict[str, str]:
        return clean_environment(**FAST, STOCKCAST_DATA_DIR=str(isolated_environment / "data"), **more)

    services: list[Service] = []

    def start(arguments: list[str] | None = None, **more: str) -> Any:
        """``stockcast worker ...`` with ``arguments``, else an API process."""
        name = f"{'worker' if arguments else 'api'}-{len(services)}"
        service = (
            Service(arguments, env(**more), isolated_environment, name)
            if arguments
            else Api(env(**more), isolated_environment, name)
        )
        services.append(service)
        return service

    yield context, start, isolated_environment
    for service in services:
        service.stop()


def wait_job(api: Api, job_id: str, condition: Any, what: str, seconds: float = 180) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def holds() -> bool:
        found.update(api.job(job_id))
        return bool(condition(found))

    wait_until(holds, f"job {job_id} {what} (last seen: {found})", None, seconds=seconds)
    return found


def pid_of(owner: str) -> int:
    """The process id in a job's owner, ``<activity> on <host> pid <pid> (<token>)``."""
    found = re.search(r" pid (\d+) \([0-9a-f]+\)$", owner)
    assert found, owner
    return int(found.group(1))


def trained_ok(job: dict[str, Any], ticker: str) -> None:
    assert job["status"] == "succeeded" and job["error"] is None, job
    assert [entry["ticker"] for entry in job["result"]["trained"]] == [ticker], job["result"]
    assert job["heartbeat_at"] is None, "a finished job is not beaten"


# -- in the API's own threads (no broker) ----------------------------------------------------------
@pytest.mark.fault(
    "SIGKILL of an API process running a training job (held mid-training), while a second API "
    "replica runs its own job",
    "The replica never touches the live process's job; once the killed one's heartbeat stops "
    "the replica adopts its job and runs it again; both jobs succeed, the adopted one on its "
    "second attempt",
)
def test_a_replica_adopts_the_job_of_an_api_that_died_and_never_touches_a_live_ones(site):
    context, start, folder = site
    release = folder / "release"
    a = start(STOCKCAST_FAILPOINTS=f"train.registered=wait:{release}")
    b = start(STOCKCAST_FAILPOINTS=f"train.registered=wait:{release}")
    first, second = a.train(["AAPL"]), b.train(["MSFT"])
    assert first["owner"].startswith(f"the API on {HOST} pid {a.process.pid} (")
    assert first["status"] in {"queued", "running"}
    wait_until(
        lambda: a.reached("train.registered") == 1 == b.reached("train.registered"), "both held", None, 180
    )

    # B's own job's heartbeat passing A's by four stale periods shows that B's keeper went
    # round (beat, then take back) many times while A, alive, held its job.
    held = a.job(first["id"])
    since = instant(held["heartbeat_at"])
    wait_job(
        b,
        second["id"],
        lambda job: instant(job["heartbeat_at"]) >= since + timedelta(seconds=4 * 1.5),
        "beaten for four stale periods",
    )
    untouched = b.job(first["id"])
    assert (untouched["status"], untouched["owner"], untouched["attempts"]) == ("running", held["owner"], 1)

    a.kill_all()
    adopted = wait_job(
        b, first["id"], lambda job: job["attempts"] == 2, "adopted by the replica after A died"
    )
    assert adopted["owner"].startswith(f"the API on {HOST} pid {b.process.pid} (")
    assert adopted["error"].startswith(f"queued again: {held['owner']} stopped its heartbeat")
    wait_until(lambda: b.reached("train.registered") == 2, "the adopted job held in B", None, 120)

    release.touch()
    trained_ok(wait_job(b, first["id"], lambda job: job["status"] != "running", "finished"), "AAPL")
    trained_ok(wait_job(b, second["id"], lambda job: job["status"] != "running", "finished"), "MSFT")
    assert len(context.store.load_decisions("AAPL")) == 1, "the adopted job decided once"


def instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# -- on Celery workers ---------------------------------------------------------------------------
@pytest.fixture
def broker(redis_server):
    """A Redis database of its own for each test: no message of one test reaches another."""
    return redis_server.rpartition("/")[0] + f"/{next(_databases) % 16}"


def worker_pids(owner: str | None) -> int:
    assert owner is not None and owner.startswith(f"stockcast worker on {HOST} pid "), owner
    return pid_of(owner)


def held_job(start: Any, broker: str, release: Path, *worker: str) -> tuple[Service, Api, dict[str, Any]]:
    """A worker armed to hold training at ``train.registered`` until ``release`` exists, an API,
    and an AAPL job posted to it, returned once the worker holds it."""
    trainer = start(
        ["worker", *worker],
        STOCKCAST_CELERY_BROKER_URL=broker,
        STOCKCAST_FAILPOINTS=f"train.registered=wait:{release}",
    )
    api = start(STOCKCAST_CELERY_BROKER_URL=broker)
    job = api.train(["AAPL"])
    assert (job["status"], job["owner"], job["attempts"]) == ("queued", None, 0), "waits for a worker"
    wait_until(lambda: trainer.reached("train.registered") == 1, "the job held in the worker", None, 180)
    return trainer, api, job


def test_a_job_is_trained_by_a_worker_and_outlives_an_api_restart(site, broker):
    """The API only enqueues: it can be restarted while the worker trains, and the new API
    process shows the job finished."""
    _, start, folder = site
    release = folder / "release"
    worker, api, job = held_job(start, broker, release)
    running = api.job(job["id"])
    assert running["status"] == "running" and worker_pids(running["owner"]) != worker.process.pid, (
        "run by one of the worker's child processes"
    )

    api.stop()
    again = start(STOCKCAST_CELERY_BROKER_URL=broker)
    release.touch()
    done = wait_job(again, job["id"], lambda job: job["status"] != "running", "finished")
    trained_ok(done, "AAPL")
    assert done["attempts"] == 1 and done["owner"] == running["owner"]


@pytest.mark.fault(
    "SIGKILL of the Celery worker's child process while it trains a job",
    "The worker puts the message back (acks_late, task_reject_on_worker_lost); the redelivered "
    "task waits until the dead child's heartbeat is stale, then runs the job again in a new "
    "child: succeeded on attempt 2",
)
def test_a_worker_child_killed_mid_training_runs_the_job_again(site, broker):
    context, start, folder = site
    release = folder / "release"
    worker, api, job = held_job(start, broker, release)
    child = worker_pids(api.job(job["id"])["owner"])
    os.kill(child, signal.SIGKILL)

    wait_until(lambda: worker.reached("train.registered") == 2, "the job held again", None, 180)
    second = api.job(job["id"])
    assert second["status"] == "running" and second["attempts"] == 2
    assert worker_pids(second["owner"]) not in (child, worker.process.pid)
    release.touch()
    done = wait_job(api, job["id"], lambda job: job["status"] != "running", "finished")
    trained_ok(done, "AAPL")
    assert len(context.store.load_decisions("AAPL")) == 1, (
        "the first attempt registered, only the second decided"
    )


@pytest.mark.fault(
    "SIGKILL of a whole Celery worker (main process and child) while it trains a job, with and "
    "without a second worker running",
    "Its message stays unacknowledged until the visibility timeout, but a live keeper (the "
    "other worker's, or the API's) sees the heartbeat stop and queues the job again: the second "
    "worker runs it at once; without one the job waits `queued` (never `running`) until a "
    "worker starts",
)
@pytest.mark.parametrize("second_worker", [True, False], ids=["second-worker", "alone"])
def test_a_whole_worker_killed_hands_its_job_on(site, broker, second_worker):
    _, start, folder = site
    release = folder / "release"
    armed = {
        "STOCKCAST_CELERY_BROKER_URL": broker,
        "STOCKCAST_FAILPOINTS": f"train.registered=wait:{release}",
    }
    first, api, job = held_job(start, broker, release, "--name", "first@%h")
    lost_owner = api.job(job["id"])["owner"]
    other = start(["worker", "--name", "second@%h"], **armed) if second_worker else None
    if other is not None:
        wait_until(lambda: "ready" in other.output(), "the second worker ready", other.process, 120)
    first.kill_all()

    if other is None:
        waiting = wait_job(api, job["id"], lambda job: job["status"] == "queued", "queued again")
        assert waiting["owner"] is None and waiting["heartbeat_at"] is None
        assert f"{lost_owner} stopped its heartbeat" in waiting["error"]
        other = start(["worker", "--name", "second@%h"], **armed)
    wait_until(lambda: other.reached("train.registered") == 1, "the job held in the second worker", None, 180)
    release.touch()
    done = wait_job(api, job["id"], lambda job: job["status"] not in ("queued", "running"), "finished")
    trained_ok(done, "AAPL")
    assert done["attempts"] == 2 and done["owner"] != lost_owner


def test_a_job_the_broker_does_not_take_is_failed_with_the_reason(site):
    """No broker at the configured address: POST /train answers 503 and the job's row says why
    (nothing is left queued that no worker will ever see)."""
    context, start, _ = site
    closed = f"redis://127.0.0.1:{free_port()}/0"
    api = start(STOCKCAST_CELERY_BROKER_URL=closed)
    status, body = api.request("POST", "/train", {"tickers": ["AAPL"]})
    assert status == 503 and "could not be queued on the broker" in body["message"], body
    jobs = context.store.recent_jobs()
    assert list(jobs["status"]) == ["failed"]
    assert "could not be queued on the broker" in jobs["error"].iloc[0]
    assert "could not be queued on the broker" in api.output(), "the 5xx's cause is in the log"


def test_a_worker_without_a_broker_says_what_to_set(isolated_environment):
    done = subprocess.run(
        [STOCKCAST, "worker"],
        check=False,
        env=clean_environment(STOCKCAST_DATA_DIR=str(isolated_environment / "data")),
        cwd=isolated_environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "STOCKCAST_CELERY_BROKER_URL is not set" in done.stderr and "Traceback" not in done.stderr
