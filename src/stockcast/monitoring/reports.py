"""Evidently reports: data drift of recent features against the training window, and the
regression performance of scored forecasts. Saved as HTML and JSON to the artifact store under
``reports/{ticker}/{date}/`` when due (see ``monitor.report_due``); their drift figures come
back so that the monitor can check them against the daily ones (``feature_drift.py``).

Evidently is imported here only (it takes seconds): ``stockcast monitor`` pays for it, the API
never does.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stockcast.features.build import FEATURE_COLUMNS
from stockcast.monitoring.feature_drift import KS_THRESHOLD, MIN_ROWS

if TYPE_CHECKING:
    from stockcast.context import Context

DRIFT_COUNT = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


@dataclass(frozen=True)
class ReportFigures:
    drift_share: float
    drifted_features: list[str]
    rmse: float | None
    mae: float | None
    uri: str


def report_prefix(ticker: str, as_of: date) -> str:
    return f"reports/{ticker}/{as_of.isoformat()}"


def _metric(result: dict[str, Any], kind: str) -> Any:
    return next(metric["value"] for metric in result["metrics"] if metric["config"]["type"] == kind)


def data_drift(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[Any, float, list[str]]:
    """The Evidently snapshot, the share of drifted features and their names. Every feature is
    declared numerical (Evidently would take a low-cardinality one for categorical) and the
    test is pinned to Kolmogorov-Smirnov at 0.05, whatever the window sizes: the test
    ``feature_drift.py`` computes every day without Evidently."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(FEATURE_COLUMNS))
    report = Report([DataDriftPreset(num_method="ks", threshold=KS_THRESHOLD)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current[FEATURE_COLUMNS].astype(float), data_definition=definition),
        Dataset.from_pandas(reference[FEATURE_COLUMNS].astype(float), data_definition=definition),
    )
    result = snapshot.dict()
    share = float(_metric(result, DRIFT_COUNT)["share"])
    drifted = [
        test["metric_config"]["params"]["column"]
        for test in result["tests"]
        if test["metric_config"]["params"]["type"] == VALUE_DRIFT and test["status"] == "FAIL"
    ]
    return snapshot, share, drifted


def regression_performance(outcomes: pd.DataFrame) -> tuple[Any, float, float]:
    """The Evidently snapshot of forecasts against actuals, with its RMSE and MAE."""
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.presets import RegressionPreset

    frame = pd.DataFrame(
        {
            "target": outcomes["actual_close"].astype(float),
            "prediction": outcomes["predicted_close"].astype(float),
        }
    )
    definition = DataDefinition(regression=[Regression(target="target", prediction="prediction")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-bucket R^2 on tiny buckets; the figures are right
        snapshot = Report([RegressionPreset()]).run(
            Dataset.from_pandas(frame, data_definition=definition), None
        )
    result = snapshot.dict()
    return (
        snapshot,
        float(_metric(result, "evidently:metric_v2:RMSE")),
        float(_metric(result, "evidently:metric_v2:MAE")["mean"]),
    )


def write_reports(
    context: Context,
    ticker: str,
    as_of: date,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    outcomes: pd.DataFrame,
    html: bool = True,
) -> ReportFigures | None:
    """Both reports for a ticker and day, written to the artifact store (a rerun of the day
    replaces them). None when the windows are too short for a drift test."""
    if len(reference) < MIN_ROWS or len(current) < MIN_ROWS:
        return None
    prefix = report_prefix(ticker, as_of)
    drift, share, drifted = data_drift(reference, current)
    snapshots = {"data_drift": drift}
    rmse = mae = None
    if len(outcomes) >= 2:
        performance, rmse, mae = regression_performance(outcomes)
        snapshots["performance"] = performance
    with tempfile.TemporaryDirectory() as folder:
        for name, snapshot in snapshots.items():
            # Evidently writes only when given a str path (a Path is silently ignored).
            json_path = Path(folder) / f"{name}.json"
            snapshot.save_json(str(json_path))
            context.artifacts.write_bytes(f"{prefix}/{name}.json", json_path.read_bytes())
            if html:
                html_path = Path(folder) / f"{name}.html"
                snapshot.save_html(str(html_path))
                context.artifacts.write_bytes(f"{prefix}/{name}.html", html_path.read_bytes())
    return ReportFigures(share, drifted, rmse, mae, context.artifacts.url(prefix))
