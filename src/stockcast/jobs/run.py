"""One training job from claim to outcome, and the keeper thread that beats and takes back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from stockcast.jobs import JobPolicy

log = logging.getLogger(__name__)


def run_training_job(context: Any, job_id: str, owner: str, policy: JobPolicy, keeper: JobKeeper) -> str:
    """Claim ``job_id`` as ``owner`` and, when claimed, train its tickers and record the outcome;
    ``keeper`` beats the row meanwhile (it beats only the jobs it is told this process holds).

    Returns the claim's outcome: ``claimed`` (it ran here, whatever its result), ``busy``
    (another live process holds it: try later), ``done`` (finished already, or failed now for
    too many starts) or ``missing``."""
    keeper.hold(job_id)
    try:
        return _claim_and_train(context, job_id, owner, policy)
    finally:
        keeper.let_go(job_id)


def _claim_and_train(context: Any, job_id: str, owner: str, policy: JobPolicy) -> str:
    from stockcast.pipeline import train_round
    from stockcast.store.leases import LeaseHeldError, TrainingLease

    store = context.store
    outcome, job = store.claim_job(job_id, owner, policy.stale_seconds, policy.max_attempts)
    if outcome != "claimed" or job is None:
        if outcome == "done" and job is not None and job["status"] == "failed":
            log.info("job %s not run: %s", job_id, job["error"])
        return outcome
    tickers: list[str] = job["tickers"]
    log.info("job %s: training %s (attempt %d) as %s", job_id, ", ".join(tickers), job["attempts"], owner)
    leases = context.leases
    held: list[TrainingLease] = []
    status, result, error = "failed", None, None
    try:
        # The job waits while another process trains one of its tickers, for up to
        # STOCKCAST_TRAINING_LEASE_WAIT_SECONDS. Leases are taken in one global order, so two
        # holders of several leases never wait for each other in a cycle.
        for ticker in sorted(tickers):
            held.append(leases.acquire(ticker, activity=f"job {job_id}"))
        if not store.job_started(job_id, owner):
            log.warning("job %s: taken back while it waited for its leases; not trained here", job_id)
            return outcome
        done = train_round(
            context,
            tickers,
            force=True,
            tune_trials=int(job["tune_trials"]),
            held={lease.ticker: lease for lease in held},
        )
        result = {
            "trained": [
                {
                    "ticker": r.ticker,
                    "horizon": r.horizon,
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
        if error:
            log.warning("job %s: not trained: %s", job_id, error)
    except LeaseHeldError as busy:
        log.warning("job %s not run: %s", job_id, busy)
        error = str(busy)
    except Exception as failure:
        log.exception("job %s failed", job_id)
        error = f"{type(failure).__name__}: {failure}"
    finally:
        for lease in reversed(held):
            leases.release(lease)
    if not _finish(store, job_id, owner, status, result, error):
        log.warning(
            "job %s: its outcome (%s) was not recorded: the job was taken back while it ran "
            "(no heartbeat for %g s) and belongs to another run now",
            job_id,
            status,
            policy.stale_seconds,
        )
    return outcome


def _finish(store: Any, job_id: str, owner: str, status: str, result: Any, error: str | None) -> bool:
    """Record the outcome, trying again while the store is away (a blip at the end of a long
    training must not leave the row running). False when the job was taken back meanwhile."""
    import time

    from stockcast.store.database import StoreUnavailableError

    for attempt in range(4):
        try:
            return bool(store.finish_job(job_id, owner, status, result=result, error=error))
        except StoreUnavailableError as failure:
            if attempt == 3:
                log.error("job %s: its outcome (%s) could not be recorded: %s", job_id, status, failure)
                raise
            log.warning("job %s: recording its outcome failed (%s); trying again", job_id, failure)
            time.sleep(2**attempt)
    return False


class JobKeeper:
    """A thread of one process: every ``heartbeat_seconds`` it beats the jobs this process holds,
    then takes back the jobs whose holder stopped beating and hands each to ``dispatch`` (queued
    again as ``adopt_as`` when this process runs them itself, else for the broker's workers)."""

    def __init__(
        self,
        context: Any,
        owner: str,
        policy: JobPolicy,
        dispatch: Callable[[dict[str, Any]], None],
        adopt: bool,
    ):
        self.context = context
        self.owner = owner
        self.policy = policy
        self.dispatch = dispatch
        self.adopt = adopt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._held: set[str] = set()
        # Since when this process's beats have all succeeded: it takes other processes' jobs
        # back only once that is a stale period ago, so after an outage that silenced everyone
        # the first keeper back does not take the jobs of live processes that are not back yet.
        self._healthy_since: float | None = None

    def hold(self, job_id: str) -> None:
        """Beat ``job_id``'s row from now on (a job queued with, or running in, this process)."""
        with self._lock:
            self._held.add(job_id)

    def let_go(self, job_id: str) -> None:
        with self._lock:
            self._held.discard(job_id)

    def start(self) -> JobKeeper:
        self._thread = threading.Thread(target=self._loop, name="stockcast-job-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        # The first round at once: what a dead process left is taken back at start, not a beat later.
        while True:
            self.beat_and_take_back()
            if self._stop.wait(self.policy.heartbeat_seconds):
                return

    def beat_and_take_back(self) -> list[dict[str, Any]]:
        """One round (the thread's, or a caller's at start); the jobs taken back."""
        import time

        from stockcast.store.database import StoreUnavailableError

        store = self.context.store
        with self._lock:
            held = sorted(self._held)
        try:
            store.beat_jobs(self.owner, held)
            now = time.monotonic()
            if self._healthy_since is None:
                self._healthy_since = now
            if now - self._healthy_since < self.policy.stale_seconds:
                return []
            taken = store.take_back_stale_jobs(
                self.policy.stale_seconds,
                self.policy.max_attempts,
                adopt_as=self.owner if self.adopt else None,
            )
        except StoreUnavailableError as error:
            self._healthy_since = None
            log.warning("jobs: could not beat or take back: %s", error)
            return []
        except Exception:
            self._healthy_since = None
            log.exception("jobs: the keeper's round failed")
            return []
        for job in taken:
            log.warning("job %s taken back: %s", job["id"], job["error"])
            try:
                self.dispatch(job)
            except Exception:
                log.exception("job %s could not be handed on; the next round tries again", job["id"])
                if not self.adopt:
                    try:
                        store.restore_job_heartbeat(job, job["previous_heartbeat_at"])
                    except Exception:
                        log.exception("job %s: could not put it back for the next round", job["id"])
        return taken
