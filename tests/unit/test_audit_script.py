"""scripts/audit.py (`make lint`) against a stand-in pip-audit: a vulnerability fails, pip-audit
breaking fails, and only an unreachable advisory database passes, with a note saying so.

The stand-in is a ``pip_audit`` package put first on PYTHONPATH, so the script starts it the way
it starts the real one (``python -m pip_audit -r requirements.lock ...``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CLEAN = {"dependencies": [{"name": "pandas", "version": "2.3.3", "vulns": []}], "fixes": []}
VULNERABLE = {
    "dependencies": [
        {"name": "pandas", "version": "2.3.3", "vulns": []},
        {"name": "jinja2", "version": "3.1.0", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": []}]},
    ],
    "fixes": [],
}
MIRROR = {
    "dependencies": [
        {"name": "pandas", "skip_reason": "Dependency not found on PyPI and could not be audited: pandas"}
    ],
    "fixes": [],
}

# What each stand-in does after recording its arguments: the body of its __main__.
BEHAVIOURS = {
    "clean": f"print(json.dumps({CLEAN!r}))",
    # pip-audit prints its report and exits 1 when it finds a vulnerability.
    "vulnerable": f"print(json.dumps({VULNERABLE!r}))\nsys.exit(1)",
    "mirror without advisories": f"print(json.dumps({MIRROR!r}))",
    # pip-audit's own handling of its service's ConnectionError (`_fatal` after the tip).
    "gives up on the connection": """
        import logging
        logging.basicConfig()
        logging.getLogger("pip_audit._cli").error("Could not connect to PyPI's vulnerability feed")
        logging.getLogger("pip_audit._cli").error(
            "Tip: your network may be blocking this service. Try another service with `-s SERVICE`"
        )
        sys.exit(1)
    """,
    # What escapes pip-audit when no name resolves (it catches only ConnectTimeout).
    "no route to pypi.org": """
        import requests
        raise requests.exceptions.ConnectionError("Max retries exceeded with url: /pypi/pandas/2.3.3/json")
    """,
    "crashes": """
        report = {}
        report["dependencies"].append(None)
    """,
    "crashes after a partial report": """
        print('{"dependencies": [')
        raise RuntimeError("internal error while formatting")
    """,
    "refuses its arguments": """
        print("usage: pip-audit [-h] ...\\npip-audit: error: unrecognized arguments: --disable-pip", file=sys.stderr)
        sys.exit(2)
    """,
    "exits 0 without a report": 'print("nothing to see")',
    "fails without naming a vulnerability": f"print(json.dumps({CLEAN!r}))\nsys.exit(1)",
    "audits nothing": 'print(json.dumps({"dependencies": [], "fixes": []}))',
}


def run_audit(tmp_path: Path, behaviour: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    package = tmp_path / "fake" / "pip_audit"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    recorded = tmp_path / "argv.json"
    (package / "__main__.py").write_text(
        "import json, sys\n"
        f"open({str(recorded)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        + textwrap.dedent(BEHAVIOURS[behaviour]).strip()
        + "\n"
    )
    path = os.pathsep.join(part for part in (str(package.parent), os.environ.get("PYTHONPATH", "")) if part)
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert recorded.exists(), f"the stand-in pip-audit never ran: {done.stdout}{done.stderr}"
    return done, json.loads(recorded.read_text())


@pytest.mark.parametrize(
    ("behaviour", "code", "said"),
    [
        ("clean", 0, "audit passed: 1 packages checked, 0 without advisory data"),
        ("vulnerable", 1, "audit failed: 1 pinned package(s) with known vulnerabilities"),
        ("mirror without advisories", 0, "audit skipped: no advisory data reachable for any of 1 packages"),
        ("gives up on the connection", 0, "audit skipped: the advisory database is unreachable"),
        ("no route to pypi.org", 0, "audit skipped: the advisory database is unreachable"),
        ("crashes", 1, "audit failed: pip-audit broke (exit status 1, no JSON report): KeyError"),
        ("crashes after a partial report", 1, "RuntimeError: internal error while formatting"),
        ("refuses its arguments", 1, "exit status 2, no JSON report): pip-audit: error: unrecognized"),
        ("exits 0 without a report", 1, "audit failed: pip-audit broke (exit status 0, no JSON report)"),
        ("fails without naming a vulnerability", 1, "exited 1 without naming a vulnerability"),
        ("audits nothing", 1, "audit failed: pip-audit checked no package"),
    ],
)
def test_only_an_unreachable_advisory_database_passes_unaudited(tmp_path, behaviour, code, said):
    done, argv = run_audit(tmp_path, behaviour)
    assert argv[:2] == ["-r", str(ROOT / "requirements.lock")] and "json" in argv
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stdout, done.stdout
    if behaviour == "vulnerable":
        assert "jinja2 3.1.0: GHSA-h5c8-rqwp-cp95" in done.stdout
    if behaviour == "gives up on the connection":
        assert "Could not connect to PyPI's vulnerability feed" in done.stdout
