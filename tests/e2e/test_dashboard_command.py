"""`stockcast dashboard` ends with everything it started (issue 19 part 9): SIGTERM and SIGINT
reach Streamlit, the command waits for it, and Streamlit's exit code is the command's. Before,
stopping the command left Streamlit running with its port taken."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from tests.conftest import clean_environment
from tests.services import free_port, wait_until

STOCKCAST = str(Path(sys.executable).parent / "stockcast")


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _dashboard(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    with (tmp_path / "output.log").open("wb") as output:
        return subprocess.Popen(
            [STOCKCAST, "dashboard", "--host", "127.0.0.1", "--port", str(port)],
            env=clean_environment(STOCKCAST_DATA_DIR=str(tmp_path / "data")),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _end(processes: list[psutil.Process]) -> None:
    """Whatever the test started and is still running goes (by its pid)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_command_stops_streamlit_and_frees_its_port(stop, tmp_path):
    port = free_port()
    command = _dashboard(port, tmp_path)
    started = [psutil.Process(command.pid)]
    try:
        wait_until(lambda: _answers(port), "stockcast dashboard", command, seconds=90)
        children = started[0].children(recursive=True)
        started += children
        assert children, "Streamlit runs as the command's child"

        command.send_signal(stop)
        assert command.wait(timeout=30) == 0, (tmp_path / "output.log").read_text()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {alive}"
        assert not _answers(port)
        # Free again: a server can listen on it (with SO_REUSEADDR, as Streamlit's does: the
        # health checks' connections may still be in TIME_WAIT).
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()
    finally:
        _end(started)


def test_streamlits_exit_code_is_the_commands(tmp_path):
    """A port already taken: Streamlit refuses to start (exit code 1), and so does the command."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = _dashboard(port, tmp_path)
        started = [psutil.Process(command.pid)]
        try:
            deadline = time.monotonic() + 90
            while command.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.NoSuchProcess):
                    started += [child for child in started[0].children() if child not in started]
                time.sleep(0.1)
            assert command.poll() == 1, (tmp_path / "output.log").read_text()
            assert "is not available" in (tmp_path / "output.log").read_text()
        finally:
            _end(started)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    """The command still ends with what it started when the child will not stop."""
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open('ready', 'w').close(); time.sleep(120)"
    )
    runner = (
        "import sys; from stockcast.cli.serving import run_forwarding_signals; "
        f"sys.exit(run_forwarding_signals([sys.executable, '-c', {stubborn!r}], grace_seconds=1))"
    )
    command = subprocess.Popen([sys.executable, "-c", runner], cwd=tmp_path, env=clean_environment())
    started = [psutil.Process(command.pid)]
    try:
        wait_until((tmp_path / "ready").exists, "the stubborn child", command, seconds=30)
        children = started[0].children()
        started += children
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=15) == 128 + signal.SIGKILL  # the child's end, as a shell says it
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive
    finally:
        _end(started)
