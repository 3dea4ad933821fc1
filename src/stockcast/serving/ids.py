"""Request ids: time-ordered random 128-bit ids (the layout of a UUID version 7), as 32 hex digits.

The forecast log keeps a unique index on the request id. Random ids (UUID version 4) land on a
random page of that index, so a commit of a hundred forecasts rewrote about a hundred index
pages; ids that start with the time in milliseconds land at the index's end, on a page or two.
The 74 random bits keep two ids of one millisecond (or of two servers) apart. The random bits
are read from the operating system in blocks, not one system call per id.
"""

from __future__ import annotations

import os
import threading
import time

_BLOCK = 4096  # random bytes per read of the operating system's randomness
_VARIANT = "89ab"  # the variant's two bits (10) and the next two random ones, as a hex digit


class _Randomness:
    """Random hex digits, read from the operating system a block at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = ""
        self._at = 0

    def take(self, digits: int) -> str:
        with self._lock:
            if self._at + digits > len(self._pool):
                self._pool = os.urandom(max(_BLOCK, digits)).hex()
                self._at = 0
            taken = self._pool[self._at : self._at + digits]
            self._at += digits
        return taken


_randomness = _Randomness()


def new_ids(count: int) -> list[str]:
    """``count`` fresh ids, in the order they were made: 48 bits of Unix time in milliseconds,
    the version (7), 12 random bits, the variant (binary 10), 62 random bits."""
    stamp = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}7"
    random = _randomness.take(19 * count)
    ids = []
    for at in range(0, 19 * count, 19):
        ids.append(
            f"{stamp}{random[at : at + 3]}{_VARIANT[int(random[at + 3], 16) & 3]}{random[at + 4 : at + 19]}"
        )
    return ids


def new_id() -> str:
    return new_ids(1)[0]
