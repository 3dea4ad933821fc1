"""Training started through the API: queued in the store, run on a small thread pool, and
serialised per ticker so two trainings of one ticker never race for its champion alias."""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, context: Any, on_finished: Any, workers: int = 2):
        self.context = context
        self.on_finished = on_finished
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stockcast-job")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._futures: dict[str, Future[None]] = {}

    def _lock_for(self, ticker: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(ticker, threading.Lock())

    def submit_training(self, tickers: list[str], tune_trials: int = 0) -> str:
        job_id = uuid.uuid4().hex
        self.context.store.create_job(job_id, "train", tickers)
        self._futures[job_id] = self._pool.submit(self._train, job_id, tickers, tune_trials)
        return job_id

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a job started by this process has finished (for tests and shutdown)."""
        self._futures[job_id].result(timeout=timeout)

    def _train(self, job_id: str, tickers: list[str], tune_trials: int) -> None:
        from stockcast.pipeline import train_many

        # Locks in a fixed order, so two jobs over overlapping tickers cannot deadlock.
        locks = [self._lock_for(ticker) for ticker in sorted(tickers)]
        for lock in locks:
            lock.acquire()
        try:
            self.context.store.update_job(job_id, status="running", started_at=datetime.now(UTC))
            reports, failures = train_many(self.context, tickers, force=True, tune_trials=tune_trials)
            result = {
                "trained": [
                    {
                        "ticker": r.ticker,
                        "version": r.version,
                        "spec": r.spec_key,
                        "promoted": r.decision.promote,
                        "reason": r.decision.reason,
                        "champion_version": r.champion_version,
                    }
                    for r in reports
                ],
                "failures": failures,
            }
            status = "failed" if failures and not reports else "succeeded"
            error = "; ".join(f"{ticker}: {reason}" for ticker, reason in failures.items()) or None
            self.context.store.update_job(
                job_id, status=status, finished_at=datetime.now(UTC), result=result, error=error
            )
        except Exception as error:
            log.exception("job %s failed", job_id)
            self.context.store.update_job(
                job_id,
                status="failed",
                finished_at=datetime.now(UTC),
                error=f"{type(error).__name__}: {error}",
            )
        finally:
            for lock in reversed(locks):
                lock.release()
            self.on_finished()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
