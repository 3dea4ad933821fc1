"""Fault injection for the reliability tests: a TCP proxy that can take a service off the
network and put it back, a runner for stockcast processes held at a fail point, and the
helpers that compare a store after a fault with one after an uninterrupted run.

The proxy does to a client what an outage does: while it is down, new connections are refused
and open ones are cut. The service behind it keeps its state, so the same test sees the
service come back as it was.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd

from stockcast.store.database import Store
from tests.conftest import clean_environment
from tests.e2e.test_daily_cycle import run_cli
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target_port``; ``down()`` and ``up()`` switch it."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones (an outage, not a slow network)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def close(self) -> None:
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select():
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            for end in (client, server):
                end.close()


class HeldProcess:
    """A `stockcast` command started with fail points armed; ``wait_for`` returns once the
    process announces that it reached one."""

    def __init__(self, arguments: list[str], env: dict[str, str], cwd: Path):
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "stockcast"), *arguments],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []

    def wait_for(self, point: str, timeout: float = 120) -> None:
        """Read stderr until ``failpoint <point> reached``; fail if the process ends first."""
        assert self.process.stderr is not None
        timer = threading.Timer(timeout, self.process.kill)
        timer.start()
        try:
            for line in self.process.stderr:
                self.stderr.append(line)
                if line.strip() == f"failpoint {point} reached":
                    return
        finally:
            timer.cancel()
        raise AssertionError(f"the process ended before {point}: {''.join(self.stderr)[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, "".join(self.stderr) + err


def stored_prices(url: str) -> pd.DataFrame:
    """The prices table as a user would compare it: every bar, without the time it arrived."""
    store = Store(url)
    try:
        frame = store.load_prices()
    finally:
        store.dispose()
    return (
        frame.drop(columns=["ingested_at"], errors="ignore")
        .sort_values(["ticker", "date"])
        .reset_index(drop=True)
    )


def sample_env(folder: Path, **more: str) -> dict[str, str]:
    """A stockcast environment with its data under ``folder`` (created), bars from the sample."""
    folder.mkdir(parents=True, exist_ok=True)
    return clean_environment(
        STOCKCAST_DATA_DIR=str(folder / "data"),
        STOCKCAST_SOURCE="sample",
        STOCKCAST_START_DATE="2010-01-01",
        **more,
    )


def reference_prices(folder: Path, *batches: str) -> pd.DataFrame:
    """What the same ingestions store when nothing goes wrong."""
    env = sample_env(folder)
    for tickers in batches:
        done = run_cli("ingest", "--tickers", tickers, env=env, cwd=folder)
        assert done.returncode == 0, done.stderr
    return stored_prices(f"sqlite:///{folder / 'data' / 'stockcast.db'}")
