"""The Prometheus and Grafana files the deployment ships: rules valid and their alerts firing on
the right series (promtool, from Debian's prometheus package), the scrape config valid, and the
dashboard well formed and asking only for metrics stockcast exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stockcast.json"
PROMQL_FUNCTIONS = {
    "max",
    "min",
    "sum",
    "rate",
    "histogram_quantile",
    "time",
    "day_of_week",
    "by",
    "on",
    "and",
    "le",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False, timeout=120)


def test_alert_rules_are_valid_and_fire_on_what_they_are_for():
    checked = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_scrape_config_is_valid():
    checked = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def exposed_metric_names(tmp_path: Path) -> set[str]:
    """Every metric family the API's /metrics exposes once a ticker has been monitored and
    served, monitoring gauges included, read from a real store."""
    from prometheus_client import generate_latest

    from stockcast.serving.observability import Metrics
    from stockcast.store.database import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    store.upsert_monitoring(
        [{"ticker": "AAA", "as_of": date(2024, 1, 2), "evaluated": 20, "rolling_rmse": 1.0,
          "rolling_naive_rmse": 1.0, "rmse_ratio": 1.0, "days_above": 0, "coverage": 0.9,
          "directional_accuracy": 0.5, "drift_share": 0.1, "status": "ok", "computed_at": datetime.now(UTC)}]
    )  # fmt: skip
    store.log_forecasts(
        [{"request_id": "r", "ticker": "AAA", "as_of": date(2024, 1, 2), "target_date": date(2024, 1, 3),
          "predicted_close": 1.0, "lower": 0.9, "upper": 1.1, "level": 0.9, "model_name": "m",
          "model_version": "1", "model_kind": "naive", "origin": "api", "created_at": None}]
    )  # fmt: skip
    metrics = Metrics()
    metrics.watch_monitoring(lambda: store)
    metrics.requests.labels("GET", "/predict/{ticker}", "200").inc()
    metrics.latency.labels("GET", "/predict/{ticker}").observe(0.01)
    metrics.forecasts.labels("AAA", "1", "1", "api").inc()
    metrics.champion_version.labels("AAA", "1").set(1)
    text = generate_latest(metrics.registry).decode()
    store.dispose()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def metric_names(expression: str) -> set[str]:
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[\[{(]|\s*\)|\s*[<>=]|$)", expression))
    return {word for word in words if word.startswith("stockcast_") or word == "up"}


def test_dashboard_is_well_formed_and_uses_exposed_metrics(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    exposed = exposed_metric_names(tmp_path)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "table", "state-timeline", "gauge"}
        assert panel["datasource"]["uid"] == uid
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        assert panel["targets"] and len({target["refId"] for target in panel["targets"]}) == len(
            panel["targets"]
        )
        for target in panel["targets"]:
            used = {name.removesuffix("_bucket") for name in metric_names(target["expr"])}
            known = {name.removesuffix("_bucket") for name in exposed}
            assert used and used <= known, f"{panel['title']!r} asks for {used - known}"


def test_alert_rules_use_exposed_metrics(tmp_path):
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exposed = {name.removesuffix("_bucket") for name in exposed_metric_names(tmp_path)} | {"up"}
    for group in rules["groups"]:
        for rule in group["rules"]:
            used = {name.removesuffix("_bucket") for name in metric_names(rule["expr"])}
            assert used and used <= exposed, f"{rule['alert']} asks for {used - exposed}"
