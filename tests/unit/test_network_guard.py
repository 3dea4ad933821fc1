"""The suite's network guard (tests/netguard) refuses and records every attempt to leave
loopback, in pytest's process and in the commands the tests start, and lets loopback through."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from tests.services import free_port

LEAVE = "import socket; socket.create_connection(('192.0.2.10', 443), timeout=2)"  # TEST-NET-1
LOOKUP = "import socket; socket.getaddrinfo('query1.finance.yahoo.com', 443)"


@pytest.mark.parametrize("code", [LEAVE, LOOKUP])
def test_a_command_the_tests_start_cannot_leave_loopback(code, tmp_path):
    log = tmp_path / "guard.log"
    env = {**os.environ, "NETWORK_GUARD_LOG": str(log)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "blocked by the test suite's network guard" in result.stderr
    recorded = log.read_text()
    assert "192.0.2.10" in recorded or "query1.finance.yahoo.com" in recorded


def test_pytest_itself_cannot_leave_loopback_and_loopback_still_works(tmp_path, monkeypatch):
    log = tmp_path / "guard.log"
    monkeypatch.setenv("NETWORK_GUARD_LOG", str(log))
    with pytest.raises(OSError, match="network guard"):
        socket.create_connection(("192.0.2.10", 443), timeout=2)
    with pytest.raises(socket.gaierror, match="network guard"):
        socket.getaddrinfo("example.com", 80)
    assert "connect to 192.0.2.10:443" in log.read_text()
    assert "name lookup of 'example.com'" in log.read_text()

    server = socket.create_server(("127.0.0.1", free_port()))
    try:
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
        with socket.create_connection(("localhost", server.getsockname()[1]), timeout=2):
            pass
    finally:
        server.close()
