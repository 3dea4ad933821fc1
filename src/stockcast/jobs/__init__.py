"""Training jobs requested through the API, run by the API's own threads or by Celery workers.

The job's row in the relational store is its record whichever runner runs it
(``GET /jobs/{id}`` reads nothing else):

- a runner **claims** the row before training (``Store.claim_job``): one claimant wins, a job
  another live process holds is left to it, and a finished job is never run again, so a
  message the broker delivers twice trains once;
- the claiming process **beats** the row's heartbeat (``JobKeeper``) while the job is queued
  with it or running, and only it can **finish** the row;
- a row whose heartbeat is older than three beats belongs to a process that died: any keeper
  **takes it back**, queued again for another run (at most ``STOCKCAST_JOB_MAX_ATTEMPTS``
  starts) or failed with the reason. A live process's jobs are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobPolicy:
    heartbeat_seconds: float
    max_attempts: int

    @property
    def stale_seconds(self) -> float:
        """A heartbeat older than three beats: its process stopped (or cannot reach the store)."""
        return 3 * self.heartbeat_seconds

    @classmethod
    def of(cls, settings: Any) -> JobPolicy:
        return cls(settings.job_heartbeat_seconds, settings.job_max_attempts)


_TOKENS: dict[int, str] = {}


def job_owner(activity: str) -> str:
    """``<activity> on <host> pid <pid> (<token>)``: the token is drawn once per process, so a
    process restarted with the same host name and pid (PID 1 in a container) is never taken for
    its dead predecessor, whose jobs it would otherwise keep beating."""
    import os
    import secrets

    from stockcast.store.leases import owner_of

    token = _TOKENS.setdefault(os.getpid(), secrets.token_hex(3))
    return f"{owner_of(activity)} ({token})"[:255]
