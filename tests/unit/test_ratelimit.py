"""The token bucket: a minute's worth in a burst, then one request per refill interval."""

from __future__ import annotations

from stockcast.serving.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_wait_then_allowed_again():
    clock = Clock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    assert [limiter.retry_after("a") for _ in range(3)] == [None, None, None]
    assert limiter.retry_after("a") == 20  # one token every 20 s
    assert limiter.retry_after("b") is None  # clients are counted apart
    clock.now = 20.0
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("a") == 20


def test_zero_turns_the_limit_off():
    limiter = RateLimiter(per_minute=0, clock=Clock())
    assert all(limiter.retry_after("a") is None for _ in range(1000))
