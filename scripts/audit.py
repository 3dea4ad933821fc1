"""Audit the pinned runtime dependencies for known vulnerabilities (pip-audit, PyPI's advisory
data). Fails on a vulnerability, and fails when pip-audit itself breaks (a traceback, an exit
status without a report, a report that is not JSON). Only an advisory database that cannot be
reached passes, and says so plainly: an offline machine, a registry mirror without PyPI's JSON
API (every package skipped), or pip-audit giving up on the connection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"

# pip-audit's own way of giving up on an unreachable service (its `_fatal` after a
# ConnectionError of its vulnerability service).
PIP_AUDIT_UNREACHABLE = "Tip: your network may be blocking this service"
# The transport's errors that mean "no route to the advisory data", when pip-audit lets them
# escape as a traceback (it only catches ConnectTimeout itself): the traceback's last line.
TRANSPORT_UNREACHABLE = (
    "requests.exceptions.ConnectionError",
    "requests.exceptions.ConnectTimeout",
    "requests.exceptions.ProxyError",
    "requests.exceptions.ReadTimeout",
)


def command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        str(LOCK),
        "--no-deps",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def unreachable(stderr: str) -> str | None:
    """Why the advisory data could not be reached, when that is what pip-audit's error says."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for position, line in enumerate(lines):
        if PIP_AUDIT_UNREACHABLE in line:  # the error it gave up on is the line before
            return lines[position - 1] if position else line
    last = _last_line(stderr)
    if last.startswith(TRANSPORT_UNREACHABLE):
        return last
    return None


def judge(returncode: int, stdout: str, stderr: str) -> tuple[int, list[str]]:
    """The audit's exit status and what it prints, from one pip-audit run."""
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        reason = unreachable(stderr)
        if returncode != 0 and reason is not None:
            return 0, [f"audit skipped: the advisory database is unreachable ({reason[-300:]})"]
        detail = _last_line(stderr)[-300:] or "no output"
        return 1, [f"audit failed: pip-audit broke (exit status {returncode}, no JSON report): {detail}"]

    dependencies = report.get("dependencies", [])
    vulnerable = [item for item in dependencies if item.get("vulns")]
    skipped = [item for item in dependencies if item.get("skip_reason")]
    lines = [
        f"{item['name']} {item['version']}: {', '.join(vuln['id'] for vuln in item['vulns'])}"
        for item in vulnerable
    ]
    if vulnerable:
        return 1, [*lines, f"audit failed: {len(vulnerable)} pinned package(s) with known vulnerabilities"]
    if returncode != 0:  # a report without a vulnerability does not explain a failure
        detail = _last_line(stderr)[-300:] or "no output"
        return 1, [f"audit failed: pip-audit exited {returncode} without naming a vulnerability: {detail}"]
    if not dependencies:
        return 1, ["audit failed: pip-audit checked no package (is the lock file empty?)"]
    if len(skipped) == len(dependencies):
        return 0, [
            f"audit skipped: no advisory data reachable for any of {len(dependencies)} packages "
            f"({skipped[0]['skip_reason']})"
        ]
    return 0, [
        f"audit passed: {len(dependencies) - len(skipped)} packages checked, {len(skipped)} without advisory data"
    ]


def main() -> int:
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter, pip-audit, our lock file
            command(), capture_output=True, text=True, check=False, timeout=600
        )
    except subprocess.TimeoutExpired:
        print("audit failed: pip-audit did not finish within 600 s")
        return 1
    code, lines = judge(done.returncode, done.stdout, done.stderr)
    for line in lines:
        print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
