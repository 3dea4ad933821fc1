"""The embedded runner: the API process runs its jobs on a small thread pool, with the same
durable rows, heartbeats and take-back as the Celery workers. Jobs queued or running in an API
process that died are taken back by the next API process (or a sibling replica) that notices
their heartbeat stopped, and run there."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from stockcast.jobs import JobPolicy
from stockcast.jobs.run import JobKeeper, run_training_job

log = logging.getLogger(__name__)


class LocalJobRunner:
    def __init__(self, context: Any, owner: str, on_finished: Any, workers: int = 2):
        self.context = context
        self.owner = owner
        self.on_finished = on_finished
        self.policy = JobPolicy.of(context.settings)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stockcast-job")
        self._futures: dict[str, Future[None]] = {}
        self.keeper = JobKeeper(context, owner, self.policy, self._dispatch, adopt=True)

    def start(self) -> None:
        self.keeper.start()

    def submit_training(self, tickers: list[str], tune_trials: int = 0) -> str:
        import uuid

        job_id = uuid.uuid4().hex
        self.keeper.hold(job_id)  # beaten from its creation: queued with this process
        self.context.store.create_job(job_id, "train", tickers, tune_trials=tune_trials, owner=self.owner)
        self._futures[job_id] = self._pool.submit(self._run, job_id)
        return job_id

    def _dispatch(self, job: dict[str, Any]) -> None:
        self.keeper.hold(job["id"])  # adopted: queued with this process
        self._futures[job["id"]] = self._pool.submit(self._run, job["id"])

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a job this process runs has finished (for tests and shutdown)."""
        self._futures[job_id].result(timeout=timeout)

    def _run(self, job_id: str) -> None:
        from stockcast.store.database import StoreUnavailableError

        try:
            run_training_job(self.context, job_id, self.owner, self.policy, self.keeper)
        except StoreUnavailableError:
            # The row could not be claimed or finished (the store is away): try again a beat
            # later; the claim never runs a job twice.
            log.exception(
                "job %s: the store is away; trying again in %g s", job_id, self.policy.heartbeat_seconds
            )
            import threading

            retry = threading.Timer(self.policy.heartbeat_seconds, self._dispatch, [{"id": job_id}])
            retry.daemon = True
            retry.start()
        except Exception:
            log.exception("job %s could not be run", job_id)
        finally:
            self.on_finished()

    def shutdown(self) -> None:
        """Stop taking jobs. Jobs not started are no longer beaten: the next API process (or a
        replica) takes them back once their heartbeat is stale. A job already training keeps
        its heartbeat until it ends or the process does."""
        for job_id, future in list(self._futures.items()):
            if future.cancel():
                self.keeper.let_go(job_id)
        self._pool.shutdown(wait=False, cancel_futures=True)
