"""Audit the pinned runtime dependencies for known vulnerabilities (pip-audit, PyPI's advisory
data). Fails on a vulnerability; says plainly, and passes, when the advisory data cannot be
reached (an offline machine or a registry mirror without PyPI's JSON API)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def main() -> int:
    done = subprocess.run(  # noqa: S603 - our interpreter, pip-audit, our lock file
        [
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
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"audit skipped: pip-audit gave no report ({done.stderr.strip()[-300:]})")
        return 0
    dependencies = report.get("dependencies", [])
    vulnerable = [item for item in dependencies if item.get("vulns")]
    skipped = [item for item in dependencies if item.get("skip_reason")]
    for item in vulnerable:
        ids = ", ".join(vuln["id"] for vuln in item["vulns"])
        print(f"{item['name']} {item['version']}: {ids}")
    if vulnerable:
        print(f"audit failed: {len(vulnerable)} pinned package(s) with known vulnerabilities")
        return 1
    if dependencies and len(skipped) == len(dependencies):
        print(
            f"audit skipped: no advisory data reachable for any of {len(dependencies)} packages ({skipped[0]['skip_reason']})"
        )
        return 0
    print(
        f"audit passed: {len(dependencies) - len(skipped)} packages checked, {len(skipped)} without advisory data"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
