"""SQLite's write-ahead log copied into the database file by a thread of its own.

SQLite appends every commit to the write-ahead log (WAL); the commit that takes the log past
1000 pages also copies the log into the database file and syncs it (a checkpoint), and the
next commit starts the log from its beginning again. Under the API's load that is a commit
every few milliseconds and a checkpoint several times a second, each copying a thousand pages
while the forecasts waiting for that commit wait for it too.

An API process therefore also copies the log from this thread, every ``interval`` seconds
(a PASSIVE checkpoint, which never stops the writer): when a commit's own checkpoint comes, most
of the log is in the database file already and it has little left to copy. The commit's
checkpoint stays as it was, so the log still restarts and stays small.

Checkpoints move committed data; they do not decide whether it is committed. Every commit is in
the log before its forecasts are answered, as before: durable through a crash of the process,
and with synchronous=NORMAL not through a loss of power, whoever checkpoints.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class WalCheckpointer:
    def __init__(self, path: str, interval: float = 0.05, busy_seconds: float = 0.2):
        self.path = path
        self.interval = interval
        self.busy_seconds = busy_seconds
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        except sqlite3.Error as error:
            log.warning("the WAL checkpoint thread could not open %s: %s", self.path, error)
            return
        try:
            while not self._stop.wait(self.interval):
                self.checkpoint(connection)
        finally:
            connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as error:  # a locked file now is a checkpoint later
            log.info("WAL checkpoint deferred: %s", error)
