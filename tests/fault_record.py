"""A pytest plugin that writes down how each fault test ended, for docs/reliability.md.

Every test marked ``@pytest.mark.fault(what, behaviour)`` that runs has its outcome (passed,
failed, skipped, xfailed) and a digest of its code merged into docs/reliability-evidence.json
as soon as it finishes (a parametrized test is one entry: failed if any case failed, passed only
if every case that ran passed). scripts/reliability_table.py builds the page only from tests
whose last recorded run passed with the code they have now.

Runs of other tests leave the file alone; FAULT_RECORD_FILE names another file (the plugin's own
tests use it).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"passed": 0, "xfailed": 1, "skipped": 2, "failed": 3}  # the worst case names the test


def _table_script() -> Any:
    name = "reliability_table_of_fault_record"
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "reliability_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class FaultRecorder:
    def __init__(self, rootpath: Path, record: Path):
        self.rootpath = rootpath
        self.record = record
        self.outcomes: dict[str, str] = {}
        self.digests: dict[str, str | None] = {}
        self._digest = _table_script().function_digest

    def key(self, item: pytest.Item) -> str:
        path = item.path.relative_to(self.rootpath) if item.path.is_relative_to(self.rootpath) else item.path
        return f"{path.as_posix()}::{getattr(item, 'originalname', item.name)}"

    def note(self, key: str, outcome: str) -> None:
        before = self.outcomes.get(key)
        if before is None or RANK[outcome] > RANK[before]:
            self.outcomes[key] = outcome

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if item.get_closest_marker("fault") is None:
            return report
        key = self.key(item)
        if key not in self.digests:
            self.digests[key] = self._digest(item.path, getattr(item, "originalname", item.name))
        if hasattr(report, "wasxfail"):
            self.note(key, "xfailed")
        elif report.failed:
            self.note(key, "failed")
        elif report.skipped:
            self.note(key, "skipped")
        elif report.when == "call":
            self.note(key, "passed")
        if report.when == "teardown":
            self.write(key)
        return report

    def write(self, key: str) -> None:
        """Merge one test's outcome into the record, under a lock (several runs may share it)."""
        entry = {"outcome": self.outcomes.get(key, "skipped"), "code": self.digests.get(key) or ""}
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with self.record.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            recorded = json.loads(text) if text.strip() else {}
            if recorded.get(key) == entry:
                return
            recorded[key] = entry
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    record = Path(os.environ.get("FAULT_RECORD_FILE") or ROOT / "docs" / "reliability-evidence.json")
    config.pluginmanager.register(FaultRecorder(config.rootpath, record), "fault-recorder")
