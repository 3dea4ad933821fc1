"""Group commit of served forecasts: every forecast is in the database before its answer goes
out, and concurrent requests share one transaction instead of queueing for one each.

A request hands its rows to the writer and waits on a future. The writer thread takes
everything waiting, writes it in one transaction, then releases every waiting request. Under
load a commit carries dozens of forecasts; alone, a request waits for its own commit only.
If a shared transaction fails, each request's rows are retried on their own, so one bad row
never fails its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)
_STOP = object()


class ForecastLog:
    """``store`` is called for the store at each commit, so a database that was away when the
    API started is used once it answers (until then each request is a 503)."""

    def __init__(self, store: Callable[[], Any], max_batch: int = 512):
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="forecast-log", daemon=True)
        self._thread.start()
        self.commits = 0

    def submit(self, records: Sequence[dict[str, Any]]) -> Future[None]:
        """Queue rows for the next commit; the future resolves once they are stored or fails
        with the database's error."""
        done: Future[None] = Future()
        if not self._thread.is_alive():
            done.set_exception(RuntimeError("the forecast log is closed"))
            return done
        self._queue.put((list(records), done))
        return done

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

    def _commit(self, pending: list[tuple[list[dict[str, Any]], Future[None]]]) -> None:
        try:
            self.store().log_forecasts([row for rows, _ in pending for row in rows])
        except Exception:
            if len(pending) == 1:
                self._settle_alone(*pending[0])
                return
            log.warning("a shared forecast-log commit of %d requests failed; retrying each", len(pending))
            for rows, done in pending:
                self._settle_alone(rows, done)
            return
        self.commits += 1
        for _, done in pending:
            done.set_result(None)

    def _settle_alone(self, rows: list[dict[str, Any]], done: Future[None]) -> None:
        try:
            self.store().log_forecasts(rows)
        except Exception as error:
            done.set_exception(error)
        else:
            done.set_result(None)
