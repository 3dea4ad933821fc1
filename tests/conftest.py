"""Shared fixtures: the network guard, isolated settings, real sample bars, synthetic series."""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.series import synthetic_bars

os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")  # lets yfinance take a plain requests.Session

pytest_plugins = ["tests.services", "tests.fault_record"]

# The network guard (tests/netguard): this process and every Python command a test starts refuse
# connections and name lookups beyond loopback and write them to one log, read after each test.
NETWORK_GUARD = Path(__file__).resolve().parent / "netguard"
_guard_log = Path(tempfile.mkstemp(prefix="stockcast-network-guard-", suffix=".log")[1])
atexit.register(_guard_log.unlink, missing_ok=True)
os.environ["NETWORK_GUARD_LOG"] = str(_guard_log)
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (str(NETWORK_GUARD), os.environ.get("PYTHONPATH", "")) if part
)
sys.path.insert(0, str(NETWORK_GUARD))
import stockcast_netguard  # noqa: E402

stockcast_netguard.install()


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[None]:
    """Fails the test during which any process of the suite tried to leave loopback."""
    start = _guard_log.stat().st_size
    yield
    with _guard_log.open(encoding="utf-8") as log:
        log.seek(start)
        attempts = log.read()
    if attempts:
        pytest.fail(
            "this test tried to reach the network beyond loopback (pin the source, or make Yahoo "
            f"unreachable as the fallback tests do):\n{attempts[:4000]}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own data folder and no STOCKCAST_* or MLflow settings from outside."""
    for name in list(os.environ):
        if name.startswith("STOCKCAST_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STOCKCAST_DATA_DIR", str(tmp_path / "data"))
    # One model per ticker unless a test asks for more: a training at three horizons costs
    # three. The tests of horizons set them (and commands started with `clean_environment`
    # get the product's default, 1,5,20, unless they pass SAMPLE_FAST).
    monkeypatch.setenv("STOCKCAST_HORIZONS", "1")
    from stockcast.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into the process environment.
    os.environ.pop("MLFLOW_TRACKING_URI", None)


# The bundled sample with two candidates, short backtests and one horizon: a training in a few
# seconds. The tests of horizons set STOCKCAST_HORIZONS themselves.
SAMPLE_FAST = {
    "STOCKCAST_SOURCE": "sample",
    "STOCKCAST_HORIZONS": "1",
    "STOCKCAST_START_DATE": "2010-01-01",
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_BACKTEST_DAYS": "60",
    "STOCKCAST_MIN_TRAIN_DAYS": "150",
    "STOCKCAST_REFIT_EVERY_DAYS": "60",
}


def clean_environment(**overrides: str) -> dict[str, str]:
    """The environment for a stockcast subprocess: nothing of stockcast's or MLflow's from
    this process, plus ``overrides``."""
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("STOCKCAST_") and name != "MLFLOW_TRACKING_URI"
    }
    return {**keep, **overrides}


def yahoo_unreachable() -> dict[str, str]:
    """Environment under which yfinance's requests to Yahoo are refused at once: its proxy is a
    loopback port nothing listens on (for the tests of the fallback to the bundled sample, which
    must behave alike with and without internet)."""
    from tests.services import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    return {"HTTPS_PROXY": closed, "HTTP_PROXY": closed, "https_proxy": closed, "http_proxy": closed}


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    from stockcast.ingest.sources import SampleSource

    return SampleSource().fetch(["AAPL", "MSFT", "GOOG", "IBM"], date(2000, 1, 1), date(2013, 12, 31)).bars


@pytest.fixture
def make_bars():
    return synthetic_bars
