"""Request ids: unique, in the layout of a UUID version 7, and ordered by the millisecond they
were made in (so the forecast log's unique index grows at its end)."""

from __future__ import annotations

import threading
import time
import uuid

from stockcast.serving.ids import new_id, new_ids


def test_ids_are_unique_version_7_uuids_across_threads():
    made: list[str] = []

    def make() -> None:
        ids = [new_id() for _ in range(2000)] + new_ids(3000)
        made.extend(ids)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == len(set(made)) == 20000
    for each in made[:500] + made[-500:]:
        parsed = uuid.UUID(each)
        assert len(each) == 32 and each == parsed.hex
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_of_a_later_millisecond_sort_after_and_carry_its_time():
    first = new_ids(5)
    before = time.time_ns() // 1_000_000
    time.sleep(0.002)
    later = new_id()
    assert all(each < later for each in first)
    assert abs(int(later[:12], 16) - before) < 1000  # the time of its making, in ms since 1970
