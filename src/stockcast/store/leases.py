"""One trainer per ticker, across processes and machines: a lease row in the relational store.

Whoever trains a ticker or moves its ``champion`` alias holds the ticker's lease from planning
(the champion it gates against is read under it) to the alias move:

- **acquire**: one statement inserts the ticker's row, or takes over a row whose expiry has
  passed; a live holder's row is left alone, and the caller waits for it (polling) or gives up
  with ``LeaseHeldError`` naming the holder;
- **heartbeat**: a thread of the holding process renews every lease it holds each third of
  ``STOCKCAST_TRAINING_LEASE_SECONDS``, so a holder that dies (SIGKILL, a lost machine) frees
  the ticker at most that long after its last renewal;
- **fencing**: right before the alias moves, ``TrainingLease.confirm`` renews the lease by its
  token in one transaction; a token that no longer holds it (it lapsed and another process took
  it) raises ``LeaseLostError`` and nothing moves. The move then runs inside a lease renewed
  moments before; a holder frozen for longer than the lease between the renewal and the move is
  the one case a registry that cannot check tokens (MLflow's) leaves open.

Every store call is one short transaction: no transaction is ever held open for a training.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stockcast.store.database import Store

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
WAIT_SETTING = "STOCKCAST_TRAINING_LEASE_WAIT_SECONDS"


def _when(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M:%S} UTC"


def describe_holder(ticker: str, holder: dict[str, Any]) -> str:
    """The line a user reads when a ticker is taken: who holds it and since when."""
    return f"{ticker} is being trained by {holder['owner']} since {_when(holder['acquired_at'])}"


class LeaseHeldError(RuntimeError):
    """Another process holds the ticker's lease (after waiting, when the caller waits)."""

    def __init__(self, ticker: str, holder: dict[str, Any], waited_seconds: float):
        self.ticker = ticker
        self.holder = holder
        waited = f" (waited {waited_seconds:g} s, {WAIT_SETTING})" if waited_seconds > 0 else ""
        super().__init__(describe_holder(ticker, holder) + waited)


class LeaseLostError(RuntimeError):
    """The lease lapsed and was taken over (or released) before the champion alias moved."""


def default_activity() -> str:
    """What this process is, for a lease's owner: the command it was started as (the package's
    name for ``python -m package``)."""
    started_as = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    return started_as.parent.name if started_as.name == "__main__.py" else started_as.name


def owner_of(activity: str) -> str:
    """``<activity> on <host> pid <pid>``: enough to find the holder and ask it, or kill it."""
    return f"{activity} on {socket.gethostname()} pid {os.getpid()}"[:255]


@dataclass
class TrainingLease:
    """A held lease. ``confirm`` is the fence: call it right before moving the alias."""

    ticker: str
    token: str
    owner: str
    acquired_at: datetime
    expires_at: datetime
    keeper: TrainingLeases = field(repr=False)
    lost: bool = False
    released: bool = False

    def confirm(self) -> None:
        """Renew by token in one transaction; ``LeaseLostError`` when the token no longer holds it."""
        self.keeper.confirm(self)


class TrainingLeases:
    """The leases one process (one context) holds, with one heartbeat thread renewing them."""

    def __init__(self, store: Store, activity: str, ttl_seconds: float, wait_seconds: float):
        self.store = store
        self.activity = activity
        self.ttl_seconds = ttl_seconds
        self.wait_seconds = wait_seconds
        self._held: dict[str, TrainingLease] = {}  # by token
        self._changed = threading.Condition()
        self._beating = False

    @property
    def heartbeat_seconds(self) -> float:
        return self.ttl_seconds / 3

    # -- acquire and release ------------------------------------------------------------------
    def acquire(
        self, ticker: str, wait_seconds: float | None = None, activity: str | None = None
    ) -> TrainingLease:
        """Take ``ticker``'s lease, waiting up to ``wait_seconds`` (the setting when None) for
        a live holder to finish; ``LeaseHeldError`` naming the holder when it does not."""
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        owner = owner_of(activity or self.activity)
        token = secrets.token_hex(16)
        started = time.monotonic()
        announced = False
        while True:
            taken, row = self.store.try_acquire_lease(ticker, owner, token, self.ttl_seconds)
            if taken and row is not None:
                return self._hold(ticker, token, owner, row)
            if row is None:
                continue  # released between the attempt and the look: try again now
            remaining = started + wait - time.monotonic()
            if remaining <= 0:
                raise LeaseHeldError(ticker, row, wait)
            if not announced:  # a wait of minutes must not look like a hang
                log.warning("%s; waiting up to %g s (%s)", describe_holder(ticker, row), wait, WAIT_SETTING)
                announced = True
            time.sleep(min(POLL_SECONDS, remaining))

    def release(self, lease: TrainingLease) -> None:
        """Give the lease up. A store that cannot be reached leaves it to lapse on its own."""
        from stockcast.store.database import StoreUnavailableError

        with self._changed:
            lease.released = True
            self._held.pop(lease.token, None)
            self._changed.notify_all()
        try:
            self.store.release_lease(lease.ticker, lease.token)
        except StoreUnavailableError as error:
            log.warning(
                "%s: could not release the training lease (%s); it lapses within %g s",
                lease.ticker,
                error,
                self.ttl_seconds,
            )

    @contextmanager
    def holding(
        self, ticker: str, wait_seconds: float | None = None, activity: str | None = None
    ) -> Iterator[TrainingLease]:
        lease = self.acquire(ticker, wait_seconds, activity)
        try:
            yield lease
        finally:
            self.release(lease)

    def confirm(self, lease: TrainingLease) -> None:
        if lease.released:
            raise LeaseLostError(f"{lease.ticker}: the training lease was already released")
        expires = self.store.renew_lease(lease.ticker, lease.token, self.ttl_seconds)
        if expires is None:
            self._lost(lease)
            holder = self.store.lease_holder(lease.ticker)
            now = f"now {describe_holder(lease.ticker, holder)}" if holder else "nobody holds it now"
            raise LeaseLostError(
                f"{lease.ticker}: lost its training lease before the champion alias could move (it "
                f"lapsed without a renewal for {self.ttl_seconds:g} s; {now}); nothing was promoted"
            )
        lease.expires_at = expires

    # -- heartbeat ----------------------------------------------------------------------------
    def _hold(self, ticker: str, token: str, owner: str, row: dict[str, Any]) -> TrainingLease:
        lease = TrainingLease(ticker, token, owner, row["acquired_at"], row["expires_at"], self)
        with self._changed:
            self._held[token] = lease
            if not self._beating:
                self._beating = True
                threading.Thread(target=self._beat, name="stockcast-lease-heartbeat", daemon=True).start()
        return lease

    def _lost(self, lease: TrainingLease) -> None:
        with self._changed:
            lease.lost = True
            self._held.pop(lease.token, None)

    def _beat(self) -> None:
        """Renew every held lease each third of the TTL; end when none is held."""
        while True:
            with self._changed:
                if not self._held:
                    self._beating = False
                    return
                self._changed.wait(self.heartbeat_seconds)
                held = list(self._held.values())
            for lease in held:
                self._renew(lease)

    def _renew(self, lease: TrainingLease) -> None:
        from stockcast.store.database import StoreUnavailableError

        try:
            expires = self.store.renew_lease(lease.ticker, lease.token, self.ttl_seconds)
        except StoreUnavailableError as error:
            # The next beat tries again; the fence before the alias move has the last word.
            log.warning("%s: could not renew the training lease: %s", lease.ticker, error)
            return
        if expires is not None:
            lease.expires_at = expires
        elif not lease.released:
            self._lost(lease)
            log.warning(
                "%s: the training lease lapsed and was taken over; this training will not promote",
                lease.ticker,
            )
