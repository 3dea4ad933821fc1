"""Named fail points: places where a fault test can hold the real process, then kill it or
break a service under it, at an exact step instead of at a guessed moment.

Off unless ``STOCKCAST_FAILPOINTS`` names the point, as comma-separated ``name=action``:

- ``pause``: announce the point on stderr and wait to be killed;
- ``wait:<path>``: announce it and wait until ``<path>`` exists, then go on;
- ``fail-once:<path>``: announce it and raise ``FailpointError`` unless ``<path>`` exists, which
  it creates: the first run fails, a retry goes on (a transient fault for retry tests);
- ``fail``: announce it and raise ``FailpointError`` every time (a lasting fault).

The announcement is one line, ``failpoint <name> reached``, so the test knows the process is
there. A point costs one environment lookup when nothing is armed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

VARIABLE = "STOCKCAST_FAILPOINTS"
POLL_SECONDS = 0.05


def _action(name: str) -> str | None:
    armed = os.environ.get(VARIABLE)
    if not armed:
        return None
    for entry in armed.split(","):
        point, _, action = entry.strip().partition("=")
        if point == name:
            return action or "pause"
    return None


class FailpointError(RuntimeError):
    """The failure a ``fail-once`` point injects."""


def failpoint(name: str) -> None:
    action = _action(name)
    if action is None:
        return
    sys.stderr.write(f"failpoint {name} reached\n")
    sys.stderr.flush()
    if action == "pause":
        while True:
            time.sleep(3600)
    if action.startswith("wait:"):
        release = Path(action.removeprefix("wait:"))
        while not release.exists():
            time.sleep(POLL_SECONDS)
        return
    if action == "fail":
        raise FailpointError(f"failpoint {name}: injected failure")
    if action.startswith("fail-once:"):
        marker = Path(action.removeprefix("fail-once:"))
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        raise FailpointError(f"failpoint {name}: injected failure (once: {marker} now exists)")
    raise ValueError(
        f"{VARIABLE}: unknown action {action!r} for {name} (pause, wait:<path>, fail-once:<path> or fail)"
    )
