"""Group commit of served forecasts: every forecast is in the database before its answer goes
out, and concurrent requests share one transaction instead of queueing for one each.

A request hands its rows to the writer and waits on a future. The writer thread takes
everything waiting, writes it in one transaction, then releases every waiting request: the
requests of an event loop with one call into that loop per commit, not one each. Under
load a commit carries dozens of forecasts; alone, a request waits for its own commit only.
If a shared transaction fails, each request's rows are retried on their own, so one bad row
never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stockcast.store.database import Logged

log = logging.getLogger(__name__)
_STOP = object()


class ForecastLog:
    """``store`` is called for the store at each commit, so a database that was away when the
    API started is used once it answers (until then each request is a 503)."""

    def __init__(
        self,
        store: Callable[[], Any],
        max_batch: int = 512,
        observe: Callable[[float, int], None] | None = None,
    ):
        """``observe(seconds, rows)`` is told of every shared commit that succeeded."""
        self.store = store
        self.max_batch = max_batch
        self.observe = observe
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="forecast-log", daemon=True)
        self._thread.start()
        self.commits = 0

    def submit(self, records: Sequence[Logged]) -> Future[None]:
        """Queue rows for the next commit; the future resolves once they are stored or fails
        with the database's error."""
        done: Future[None] = Future()
        if not self._thread.is_alive():
            done.set_exception(RuntimeError("the forecast log is closed"))
            return done
        self._queue.put((list(records), done))
        return done

    async def write(self, records: Sequence[Logged]) -> None:
        """``submit`` for a coroutine: returns once the rows are stored, raises the database's
        error if they cannot be."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._thread.is_alive():
            raise RuntimeError("the forecast log is closed")
        self._queue.put((list(records), (loop, done)))
        await done

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            pending = [item]
            stopping = False
            while len(pending) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                pending.append(more)
            self._commit(pending)
            if stopping:
                return

    def _commit(self, pending: list[tuple[list[Logged], Any]]) -> None:
        rows = [row for each, _ in pending for row in each]
        start = time.perf_counter()
        try:
            self.store().append_forecasts(rows)
        except Exception:
            if len(pending) == 1:
                self._settle([(pending[0][1], self._write_alone(pending[0][0]))])
                return
            log.warning("a shared forecast-log commit of %d requests failed; retrying each", len(pending))
            self._settle([(done, self._write_alone(rows)) for rows, done in pending])
            return
        self.commits += 1
        if self.observe is not None:
            self.observe(time.perf_counter() - start, len(rows))
        self._settle([(done, None) for _, done in pending])

    def _write_alone(self, rows: list[Logged]) -> BaseException | None:
        try:
            self.store().append_forecasts(rows)
        except Exception as error:
            return error
        return None

    @staticmethod
    def _settle(outcomes: list[tuple[Any, BaseException | None]]) -> None:
        """Release the waiters: thread futures here, each event loop's in one call into it."""
        loops: dict[Any, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
        for done, error in outcomes:
            if isinstance(done, Future):
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            else:
                loop, waiter = done
                loops.setdefault(loop, []).append((waiter, error))
        for loop, waiters in loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_wake, waiters)


def _wake(waiters: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for waiter, error in waiters:
        if waiter.done():  # cancelled: the client went away (its rows are stored all the same)
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
