"""A training job's row is its record whichever process runs it (issue 20), on SQLite and on
PostgreSQL: one claimant wins when several try at once; a job whose holder is alive is never
taken from it; a job whose holder stopped beating is queued again (for a worker, or adopted
by the process that noticed) and, after its last allowed start, failed naming the holder; and
a holder that lost its job cannot record an outcome over the new run's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from stockcast.store.database import Store

STALE = 30.0


@pytest.fixture
def store(migrated_store):
    return migrated_store


def silence(store: Store, job_id: str, seconds: float = 2 * STALE) -> None:
    """What a holder that died leaves: a heartbeat that stopped ``seconds`` ago."""
    store.update_job(job_id, heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))


def test_of_many_claiming_one_job_at_once_exactly_one_runs_it(store):
    store.create_job("j1", "train", ["AAPL"])
    start = threading.Barrier(8)

    def claim(index: int) -> str:
        start.wait()
        return store.claim_job("j1", f"worker {index}", STALE, max_attempts=3)[0]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert sorted(outcomes) == ["busy"] * 7 + ["claimed"]
    job = store.get_job("j1")
    assert job is not None
    assert (job["status"], job["owner"], job["attempts"]) == (
        "running",
        f"worker {outcomes.index('claimed')}",
        1,
    )


def test_a_live_holders_job_is_never_taken_and_a_silent_ones_is_queued_again(store):
    store.create_job("live", "train", ["AAPL"])
    store.create_job("dead", "train", ["MSFT"], tune_trials=5)
    assert store.claim_job("live", "worker A", STALE, 3)[0] == "claimed"
    assert store.claim_job("dead", "worker B", STALE, 3)[0] == "claimed"
    silence(store, "dead")

    # A redelivered message for the live job is told to come back later, and the keeper's round
    # passes it by; the silent holder's job goes back to the queue for the next worker.
    assert store.claim_job("live", "worker C", STALE, 3)[0] == "busy"
    assert store.beat_jobs("worker A", ["live", "dead"]) == 1, "only the rows it holds"
    taken = store.take_back_stale_jobs(STALE, max_attempts=3)
    assert [job["id"] for job in taken] == ["dead"]
    live, dead = store.get_job("live"), store.get_job("dead")
    assert live is not None and (live["status"], live["owner"]) == ("running", "worker A")
    assert dead is not None and (dead["status"], dead["owner"], dead["heartbeat_at"]) == (
        "queued",
        None,
        None,
    )
    assert "worker B stopped its heartbeat" in dead["error"] and "attempt 1 of 3" in dead["error"]

    # The next worker runs it as a second attempt, with the job's own request.
    outcome, job = store.claim_job("dead", "worker C", STALE, 3)
    assert outcome == "claimed" and job is not None
    assert (job["attempts"], job["tune_trials"], job["tickers"]) == (2, 5, ["MSFT"])
    assert store.finish_job("dead", "worker C", "succeeded", result={"trained": []})
    done = store.get_job("dead")
    assert done is not None and (done["status"], done["error"], done["heartbeat_at"]) == (
        "succeeded",
        None,
        None,
    )
    assert store.claim_job("dead", "worker D", STALE, 3)[0] == "done", "a finished job never runs again"


def test_a_process_running_jobs_itself_adopts_the_jobs_it_takes_back(store):
    store.create_job("j1", "train", ["AAPL"], owner="the API on host-a pid 10")
    silence(store, "j1")
    taken = store.take_back_stale_jobs(STALE, 3, adopt_as="the API on host-b pid 20")
    assert [job["owner"] for job in taken] == ["the API on host-b pid 20"]
    job = store.get_job("j1")
    assert job is not None and job["status"] == "queued" and job["heartbeat_at"] is not None
    assert store.claim_job("j1", "someone else", STALE, 3)[0] == "busy", "adopted: beaten by its adopter"
    assert store.claim_job("j1", "the API on host-b pid 20", STALE, 3)[0] == "claimed"


def test_two_keepers_taking_back_at_once_take_each_job_once(store):
    for index in range(6):
        store.create_job(f"j{index}", "train", ["AAPL"])
        store.claim_job(f"j{index}", "dead worker", STALE, 3)
        silence(store, f"j{index}")
    start = threading.Barrier(2)

    def take_back(name: str) -> list[str]:
        start.wait()
        return [job["id"] for job in store.take_back_stale_jobs(STALE, 3, adopt_as=name)]

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(take_back, ["keeper 1", "keeper 2"])
    assert sorted(first + second) == [f"j{index}" for index in range(6)]
    assert not set(first) & set(second)


def test_after_its_last_start_a_silent_job_fails_naming_its_holder(store):
    store.create_job("j1", "train", ["AAPL"])
    for attempt in range(2):
        assert store.claim_job("j1", f"worker {attempt}", STALE, 2)[0] == "claimed"
        silence(store, "j1")
        taken = store.take_back_stale_jobs(STALE, 2)
        assert [job["id"] for job in taken] == ([] if attempt == 1 else ["j1"])
    job = store.get_job("j1")
    assert job is not None and job["status"] == "failed" and job["finished_at"] is not None
    assert job["error"].startswith("gave up after 2 attempts (STOCKCAST_JOB_MAX_ATTEMPTS=2)")
    assert "worker 1" in job["error"]


def test_a_redelivery_after_the_last_start_fails_the_job_instead_of_running_it(store):
    """A child that dies every time (a poison job, the OOM killer) is not run forever by the
    broker's redeliveries."""
    store.create_job("j1", "train", ["AAPL"])
    assert store.claim_job("j1", "worker 1", STALE, 1)[0] == "claimed"
    silence(store, "j1")
    outcome, job = store.claim_job("j1", "worker 2", STALE, 1)
    assert outcome == "done" and job is not None and job["status"] == "failed"
    assert "gave up after 1 attempts" in job["error"] and "worker 1" in job["error"]


def test_a_holder_that_lost_its_job_cannot_record_over_the_new_run(store):
    store.create_job("j1", "train", ["AAPL"])
    store.claim_job("j1", "slow worker", STALE, 3)
    silence(store, "j1")  # frozen past the stale period (a long pause, a partition)
    store.take_back_stale_jobs(STALE, 3)
    store.claim_job("j1", "new worker", STALE, 3)

    assert not store.finish_job("j1", "slow worker", "failed", error="too late")
    assert store.beat_jobs("slow worker", ["j1"]) == 0
    job = store.get_job("j1")
    assert job is not None and (job["status"], job["owner"]) == ("running", "new worker")
    assert store.finish_job("j1", "new worker", "succeeded", result={"trained": []})


def test_a_keeper_takes_back_only_once_its_own_beats_have_held_and_retries_a_failed_hand_on(store):
    """After an outage that silenced every process, the first keeper back must not take the
    jobs of live processes that are not back yet: it takes back only once its own beats have
    succeeded for a stale period. A job it could not hand on (the broker away) is taken back
    again on the next round, not left queued without a message."""
    from types import SimpleNamespace

    from stockcast.jobs import JobPolicy
    from stockcast.jobs.run import JobKeeper

    store.create_job("j1", "train", ["AAPL"])
    store.claim_job("j1", "dead worker", STALE, 3)
    silence(store, "j1")
    handed: list[str] = []

    def hand_on(job: dict) -> None:
        handed.append(job["id"])
        if len(handed) == 1:
            raise ConnectionError("broker away")

    keeper = JobKeeper(SimpleNamespace(store=store), "keeper", JobPolicy(STALE / 3, 3), hand_on, adopt=False)
    assert keeper.beat_and_take_back() == [], "just back: its own beats have not held yet"
    assert store.get_job("j1")["owner"] == "dead worker"
    keeper._healthy_since -= STALE  # its beats have now held for a stale period

    assert [job["id"] for job in keeper.beat_and_take_back()] == ["j1"] and handed == ["j1"]
    again = store.get_job("j1")
    assert again["status"] == "queued" and again["heartbeat_at"] is not None, (
        "stale again, for the next round"
    )
    assert [job["id"] for job in keeper.beat_and_take_back()] == ["j1"] and handed == ["j1", "j1"]
    assert store.get_job("j1")["heartbeat_at"] is None, "handed on: now it waits for a worker"
