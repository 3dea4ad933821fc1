"""Which runner the API's training jobs go to: Celery workers when a broker is configured,
else the API's own threads (``stockcast.jobs``). Either way a job first takes the training
lease of each of its tickers (``store/leases.py``), so no other process or thread trains them
or moves their champion alias while it runs."""

from __future__ import annotations

from typing import Any


def job_runner(context: Any, on_finished: Any) -> Any:
    from stockcast.jobs import job_owner

    owner = job_owner(context.activity or "the API")
    if context.settings.celery_broker_url is not None:
        from stockcast.jobs.broker import BrokerJobQueue

        return BrokerJobQueue(context, owner)
    from stockcast.jobs.local import LocalJobRunner

    return LocalJobRunner(context, owner, on_finished)
