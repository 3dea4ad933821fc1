"""The test suite's network guard: any connection (or name lookup) beyond loopback is refused
and written down, so a test that would reach the internet fails here and on a machine that has
it alike.

pytest installs it in its own process (tests/conftest.py); the commands the tests start load it
through ``sitecustomize`` (this folder is put on their PYTHONPATH) when
``NETWORK_GUARD_LOG`` names the file where blocked attempts are recorded. The suite's
fixtures read that file after every test and fail the test that caused an entry.

Yahoo's fallback tests do not need an exception: they make Yahoo unreachable themselves (a
replayed session, or a proxy on a loopback port nothing listens on).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import traceback
from typing import Any

LOG_VARIABLE = "NETWORK_GUARD_LOG"
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}


def _is_loopback_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0].lower()
    if host in LOCAL_NAMES or host == socket.gethostname().lower():
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(mapped is not None and mapped.is_loopback)


def _needs_dns(host: Any) -> bool:
    """A lookup that would ask a name server: not loopback, not an address written out."""
    if _is_loopback_host(host):
        return False
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return True
    return False  # an address: the connect that follows is checked


def _record(what: str) -> None:
    path = os.environ.get(LOG_VARIABLE)
    frames = traceback.format_stack()[:-2]
    # The frames that say who asked: the project's and the tests', then the library's last few.
    mine = [frame for frame in frames if "/stockcast/" in frame or "/tests/" in frame]
    where = "".join([*mine[-6:], "  ...\n", *frames[-3:]])
    line = f"pid {os.getpid()} ({' '.join(sys.argv[:3])}): {what}\n{where}\n"
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line)


def _blocked(what: str) -> OSError:
    _record(what)
    return OSError(errno.ENETUNREACH, f"blocked by the test suite's network guard: {what}")


def install() -> None:
    """Patch the socket module of this process (idempotent)."""
    if getattr(socket.socket.connect, "network_guard", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback_host(address[0]):
            raise _blocked(f"connect to {address[0]}:{address[1]}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if _needs_dns(host):
            _record(f"name lookup of {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"blocked by the test suite's network guard: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        if _needs_dns(host):
            _record(f"name lookup of {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"blocked by the test suite's network guard: {host}")
        return real_gethostbyname(host)

    connect.network_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
