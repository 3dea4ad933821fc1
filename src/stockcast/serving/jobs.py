"""Training started through the API: queued in the store and run on a small thread pool. A job
first takes the training lease of each of its tickers (``store/leases.py``), so no other
process or thread trains them or moves their champion alias while it runs."""

from __future__ import annotations

import logging
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
        self._futures: dict[str, Future[None]] = {}

    def submit_training(self, tickers: list[str], tune_trials: int = 0) -> str:
        job_id = uuid.uuid4().hex
        self.context.store.create_job(job_id, "train", tickers)
        self._futures[job_id] = self._pool.submit(self._train, job_id, tickers, tune_trials)
        return job_id

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a job started by this process has finished (for tests and shutdown)."""
        self._futures[job_id].result(timeout=timeout)

    def _train(self, job_id: str, tickers: list[str], tune_trials: int) -> None:
        from stockcast.pipeline import train_round
        from stockcast.store.leases import LeaseHeldError, TrainingLease

        leases = self.context.leases
        held: list[TrainingLease] = []
        try:
            # The job stays queued while another process trains one of its tickers, for up to
            # STOCKCAST_TRAINING_LEASE_WAIT_SECONDS. Leases are taken in one global order, so
            # two holders of several leases never wait for each other in a cycle.
            for ticker in sorted(tickers):
                held.append(leases.acquire(ticker, activity=f"API job {job_id}"))
            self.context.store.update_job(job_id, status="running", started_at=datetime.now(UTC))
            done = train_round(
                self.context,
                tickers,
                force=True,
                tune_trials=tune_trials,
                held={lease.ticker: lease for lease in held},
            )
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
                    for r in done.reports
                ],
                "failures": done.failures,
            }
            status = "failed" if done.failures and not done.reports else "succeeded"
            error = "; ".join(f"{ticker}: {reason}" for ticker, reason in done.failures.items()) or None
            self.context.store.update_job(
                job_id, status=status, finished_at=datetime.now(UTC), result=result, error=error
            )
        except LeaseHeldError as busy:
            log.warning("job %s not run: %s", job_id, busy)
            self.context.store.update_job(
                job_id, status="failed", finished_at=datetime.now(UTC), error=str(busy)
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
            for lease in reversed(held):
                leases.release(lease)
            self.on_finished()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
