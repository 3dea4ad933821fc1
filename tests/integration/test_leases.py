"""The training lease in the relational store, on SQLite and on PostgreSQL: one holder at a time
(also when many try at the same instant), takeover only after expiry, renewal and release only
by the token that holds it, a heartbeat that keeps a held lease alive past its TTL, and a
waiter that gives up naming the holder."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from stockcast.store.leases import LeaseHeldError, LeaseLostError, TrainingLease, TrainingLeases, owner_of


@pytest.fixture
def store(migrated_store):
    return migrated_store


def wait_for(condition, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:g} s"
        time.sleep(0.05)


def test_one_holder_until_release_and_only_its_token_renews_or_releases(store):
    taken, mine = store.try_acquire_lease("AAPL", "trainer A", "token-a", 60)
    assert taken and mine is not None and mine["owner"] == "trainer A"

    taken, holder = store.try_acquire_lease("AAPL", "trainer B", "token-b", 60)
    assert not taken and holder is not None
    assert (holder["owner"], holder["token"]) == ("trainer A", "token-a")
    assert holder["acquired_at"] <= holder["expires_at"]

    assert store.renew_lease("AAPL", "token-b", 60) is None
    assert not store.release_lease("AAPL", "token-b")
    assert store.renew_lease("AAPL", "token-a", 60) is not None
    assert store.try_acquire_lease("MSFT", "trainer B", "token-m", 60)[0], "leases are per ticker"

    assert store.release_lease("AAPL", "token-a")
    assert store.lease_holder("AAPL") is None
    taken, row = store.try_acquire_lease("AAPL", "trainer B", "token-b", 60)
    assert taken and row is not None and row["owner"] == "trainer B"


def test_an_expired_lease_is_taken_over_and_its_old_token_is_fenced_off(store):
    assert store.try_acquire_lease("AAPL", "trainer A", "token-a", 0.3)[0]
    assert not store.try_acquire_lease("AAPL", "trainer B", "token-b", 60)[0]
    wait_for(lambda: store.try_acquire_lease("AAPL", "trainer B", "token-b", 60)[0], "takeover")

    assert store.renew_lease("AAPL", "token-a", 60) is None, "the old holder's token no longer renews"
    assert not store.release_lease("AAPL", "token-a"), "nor releases the new holder's lease"
    holder = store.lease_holder("AAPL")
    assert holder is not None and holder["token"] == "token-b"


def test_many_acquiring_at_the_same_instant_leaves_exactly_one_holder(store):
    start = threading.Barrier(8)

    def attempt(index: int) -> bool:
        start.wait()
        return store.try_acquire_lease("AAPL", f"trainer {index}", f"token-{index}", 60)[0]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert outcomes.count(True) == 1
    holder = store.lease_holder("AAPL")
    assert holder is not None and holder["token"] == f"token-{outcomes.index(True)}"


def test_the_heartbeat_keeps_a_held_lease_past_its_ttl_and_a_waiter_names_the_holder(store):
    holder = TrainingLeases(store, "stockcast train", ttl_seconds=1.0, wait_seconds=0.0)
    waiter = TrainingLeases(store, "stockcast models promote", ttl_seconds=1.0, wait_seconds=0.0)
    lease = holder.acquire("AAPL")
    assert lease.owner == owner_of("stockcast train")

    deadline = time.monotonic() + 2.5  # two and a half TTLs, renewed every third of one
    while time.monotonic() < deadline:
        with pytest.raises(LeaseHeldError):
            waiter.acquire("AAPL")
        time.sleep(0.2)
    lease.confirm()  # the fence passes: the token still holds the lease

    started = time.monotonic()
    with pytest.raises(LeaseHeldError) as refused:
        waiter.acquire("AAPL", wait_seconds=0.6)
    assert time.monotonic() - started >= 0.6
    message = str(refused.value)
    assert message.startswith(
        f"AAPL is being trained by {lease.owner} since {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    assert message.endswith("(waited 0.6 s, STOCKCAST_TRAINING_LEASE_WAIT_SECONDS)")

    holder.release(lease)
    with waiter.holding("AAPL") as taken:
        assert taken.owner == owner_of("stockcast models promote")
    assert store.lease_holder("AAPL") is None


def test_a_waiter_gets_the_lease_as_soon_as_the_holder_releases_it(store):
    holder = TrainingLeases(store, "a", ttl_seconds=60, wait_seconds=0)
    waiter = TrainingLeases(store, "b", ttl_seconds=60, wait_seconds=30)
    lease = holder.acquire("AAPL")
    released_at = []

    def release_soon() -> None:
        time.sleep(0.5)
        released_at.append(time.monotonic())
        holder.release(lease)

    threading.Thread(target=release_soon).start()
    taken = waiter.acquire("AAPL")
    assert released_at and time.monotonic() - released_at[0] < 5
    waiter.release(taken)


def test_a_lease_lost_to_another_holder_fails_its_fence(store):
    # A holder frozen mid-training: its lease (0.3 s) gets no heartbeat, lapses, and another
    # process takes the ticker.
    stale = TrainingLeases(store, "paused trainer", ttl_seconds=0.3, wait_seconds=0)
    taken, row = store.try_acquire_lease("AAPL", "paused trainer", "token-paused", 0.3)
    assert taken and row is not None
    lease = TrainingLease(
        "AAPL", "token-paused", "paused trainer", row["acquired_at"], row["expires_at"], stale
    )
    other = TrainingLeases(store, "next trainer", ttl_seconds=60, wait_seconds=10)
    current = other.acquire("AAPL")

    with pytest.raises(
        LeaseLostError, match=r"lost its training lease.*now AAPL is being trained by next trainer"
    ):
        lease.confirm()
    assert lease.lost
    current.confirm()
    other.release(current)
