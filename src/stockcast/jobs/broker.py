"""Training jobs on Celery, when ``STOCKCAST_CELERY_BROKER_URL`` names a Redis broker.

The API only enqueues: it writes the job's row, then sends a message carrying the job's id.
``stockcast worker`` runs Celery's prefork worker; each child process claims the row, trains,
records the outcome, and beats the row while it runs. Celery keeps no results (the row is the
record). What survives what:

- **a child SIGKILLed** (the OOM killer, a ``kill -9``): with ``acks_late`` and
  ``task_reject_on_worker_lost`` the worker puts the message back at once; the redelivered
  task finds the row still beaten by the dead child and asks again after a stale period
  (``self.retry``), by which time the row is stale and it claims it: a second attempt;
- **the whole worker SIGKILLed**: its unacknowledged message would come back only after the
  broker's visibility timeout (hours, longer than any training, so that a long training is
  never delivered twice); instead any live keeper (another worker's child, or the API) sees
  the row's heartbeat stop and sends the job again at once. With no worker left, the job waits
  ``queued`` until one starts; the old message, when it comes back, finds the job finished and
  is dropped;
- **the API restarted**: nothing to survive, it holds no job. A job is started at most
  ``STOCKCAST_JOB_MAX_ATTEMPTS`` times; then it fails, naming the last process that ran it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from stockcast.jobs import JobPolicy

if TYPE_CHECKING:
    from celery import Celery

    from stockcast.settings import Settings

log = logging.getLogger(__name__)
TASK = "stockcast.train_job"


def celery_app(settings: Settings) -> Celery:
    """The Celery application of these settings, with the training task registered."""
    from celery import Celery

    if settings.celery_broker_url is None:
        raise ValueError("STOCKCAST_CELERY_BROKER_URL is not set: training jobs run in the API process")
    app = Celery("stockcast", broker=settings.celery_broker_url.get_secret_value(), set_as_current=False)
    app.conf.update(
        # A message is acknowledged when its task ends, not when it starts, and put back when
        # the child running it dies: a killed training is run again, never silently lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per child: a busy worker does not hoard jobs another could run.
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged message after this long: longer than the longest
        # training, or a training still running would be handed to a second worker.
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_seconds},
        task_ignore_result=True,  # the jobs table is the record
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=min(settings.database_timeout_seconds, 5.0),
        worker_send_task_events=False,
    )

    @app.task(name=TASK, bind=True, max_retries=None)
    def train_job(task: Any, job_id: str) -> str:
        from stockcast.jobs.run import run_training_job
        from stockcast.store.database import StoreUnavailableError

        try:
            context, keeper = _child()
            outcome = run_training_job(context, job_id, keeper.owner, keeper.policy, keeper)
        except StoreUnavailableError as error:
            # The row could not be read or claimed: the message must not be acknowledged as
            # done, or the job would wait queued for ever. Ask again a little later.
            log.warning("job %s: the store is away (%s); trying again", job_id, error)
            raise task.retry(countdown=settings.job_heartbeat_seconds * 3) from error
        if outcome == "busy":
            # Another live process holds the row (a redelivery while it runs, or a child that
            # died moments ago and whose heartbeat is not yet stale): ask again once it would be.
            raise task.retry(countdown=keeper.policy.stale_seconds)
        return outcome

    return app


class BrokerJobQueue:
    """The API's side: jobs are written, then sent to the broker for ``stockcast worker``."""

    def __init__(self, context: Any, owner: str):
        from stockcast.jobs.run import JobKeeper

        self.context = context
        self.app = celery_app(context.settings)
        self.policy = JobPolicy.of(context.settings)
        # The API keeps no job, but takes back the jobs of workers that died (as workers do),
        # so a lone worker's death is noticed even before another worker starts.
        self.keeper = JobKeeper(context, owner, self.policy, self.send, adopt=False)

    def start(self) -> None:
        self.keeper.start()

    def submit_training(self, tickers: list[str], tune_trials: int = 0) -> str:
        import uuid

        job_id = uuid.uuid4().hex
        self.context.store.create_job(job_id, "train", tickers, tune_trials=tune_trials)
        try:
            self.send({"id": job_id})
        except Exception as error:
            reason = f"the job could not be queued on the broker: {type(error).__name__}: {error}"
            log.error("job %s: %s", job_id, reason)
            self.context.store.update_job(job_id, status="failed", error=reason)
            raise BrokerUnavailableError(reason) from error
        return job_id

    def send(self, job: dict[str, Any]) -> None:
        send(self.app, job["id"])

    def shutdown(self) -> None:
        self.keeper.stop()


class BrokerUnavailableError(RuntimeError):
    """The broker did not take the job (it is recorded as failed, with this reason)."""


def send(app: Celery, job_id: str) -> None:
    app.send_task(
        TASK,
        args=[job_id],
        retry=True,
        # Short: the keeper sends from the thread that beats this process's jobs.
        retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    )


# -- the worker's side ---------------------------------------------------------------------------
_CHILD: dict[int, tuple[Any, Any]] = {}  # per process id: a forked child never uses its parent's
_WORKER: dict[str, Any] = {}  # the worker's application, inherited by its children


def _child() -> tuple[Any, Any]:
    """This worker process's context and job keeper, made on its first use after the fork."""
    pid = os.getpid()
    if pid not in _CHILD:
        from stockcast.context import Context
        from stockcast.jobs import job_owner
        from stockcast.jobs.run import JobKeeper
        from stockcast.settings import load_settings

        settings = load_settings()
        context = Context(settings, activity="stockcast worker")
        app = _WORKER.get("app") or celery_app(settings)
        keeper = JobKeeper(
            context,
            job_owner("stockcast worker"),
            JobPolicy.of(settings),
            lambda job: send(app, job["id"]),
            adopt=False,
        )
        _CHILD[pid] = (context, keeper.start())
    return _CHILD[pid]


def run_worker(settings: Settings, concurrency: int, loglevel: str, hostname: str | None) -> None:
    """``stockcast worker``: Celery's prefork worker for the training task. Each child starts
    its job keeper as soon as it is forked, so stale jobs are taken back even while no job
    arrives."""
    import socket

    from celery.signals import worker_process_init

    app = _WORKER["app"] = celery_app(settings)

    @worker_process_init.connect(weak=False)
    def start_keeper(**_: Any) -> None:
        try:
            _child()
        except Exception:
            log.exception("the worker process could not open the store; it retries on its first job")

    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--loglevel={loglevel}",
            f"--hostname={hostname or f'stockcast@{socket.gethostname()}'}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
