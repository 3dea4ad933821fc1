"""Shared fixtures: isolated settings, real sample bars, synthetic series, shared data paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.series import synthetic_bars

os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")  # lets yfinance take a plain requests.Session

pytest_plugins = ["tests.services"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own data folder and no STOCKCAST_* or MLflow settings from outside."""
    for name in list(os.environ):
        if name.startswith("STOCKCAST_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STOCKCAST_DATA_DIR", str(tmp_path / "data"))
    from stockcast.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into the process environment.
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def clean_environment(**overrides: str) -> dict[str, str]:
    """The environment for a stockcast subprocess: nothing of stockcast's or MLflow's from
    this process, plus ``overrides``."""
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("STOCKCAST_") and name != "MLFLOW_TRACKING_URI"
    }
    return {**keep, **overrides}


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    from stockcast.ingest.sources import SampleSource

    return SampleSource().fetch(["AAPL", "MSFT", "GOOG", "IBM"], date(2000, 1, 1), date(2013, 12, 31)).bars


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the project")
    return SHARED_DATA


@pytest.fixture
def make_bars():
    return synthetic_bars
