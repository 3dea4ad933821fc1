"""The dashboard in a real browser (Debian's chromium driven by Playwright, headless) over a
store filled by `stockcast run` on the bundled sample: every page opens, shows its key element,
agrees with the store, and is photographed (test-artifacts/dashboard/, and the README's
docs/screenshots/ when DASHBOARD_SCREENSHOTS_DIR names it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import clean_environment
from tests.e2e.test_daily_cycle import run_cli
from tests.services import free_port, wait_until

from stockcast.context import Context
from stockcast.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
TICKERS = "AAPL,MSFT"
HORIZONS = [1, 5, 20]


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory) -> dict[str, str]:
    """Twenty simulated sessions up to the sample's last day (`stockcast replay`: `run`'s cycle
    per day, so the history has scored forecasts), then `stockcast run` itself on the result."""
    folder = tmp_path_factory.mktemp("dashboard")
    env = {
        "STOCKCAST_DATA_DIR": str(folder / "data"),
        "STOCKCAST_TICKERS": TICKERS,
        "STOCKCAST_MODELS": "naive,drift,ridge",
        "STOCKCAST_BACKTEST_DAYS": "100",
        "STOCKCAST_SOURCE": "sample",
        "STOCKCAST_HORIZONS": ",".join(map(str, HORIZONS)),
    }
    replayed = run_cli(
        "replay", "--start", "2013-02-01", "--days", "20", "--data-dir", env["STOCKCAST_DATA_DIR"], env=env
    )
    assert replayed.returncode == 0, replayed.stderr
    result = run_cli("run", env=env)
    assert result.returncode == 0, result.stderr
    return env


def _serving(url: str, health: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}{health}", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _start(arguments: list[str], env: dict[str, str], health: str, seconds: float = 60):
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "stockcast"), *arguments, "--port", str(port)],
        env=clean_environment(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _serving(url, health), f"stockcast {arguments[0]}", process, seconds=seconds)
    return process, url


@pytest.fixture(scope="module")
def api(filled_store) -> str:
    """`stockcast serve` over the same store, for the dashboard's "fresh forecast" form."""
    process, url = _start(["serve"], filled_store, "/health", seconds=120)
    yield url
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def dashboard(filled_store, api) -> str:
    process, url = _start(
        ["dashboard", "--host", "127.0.0.1"], {**filled_store, "STOCKCAST_API_URL": api}, "/_stcore/health"
    )
    yield url
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


def photograph(page, name: str) -> None:
    # Streamlit shows its status widget while the script runs; then the charts draw.
    page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=30_000)
    page.wait_for_timeout(1000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    extra = os.environ.get("DASHBOARD_SCREENSHOTS_DIR")
    if extra:
        folder = ROOT / extra  # relative to the project (tests run in their own folders)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}.png", folder / f"dashboard-{name}.png")


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-testid=stMain] h1, [data-testid=stMain] h2", timeout=60_000)
    assert page.locator("[data-testid=stException]").count() == 0


# The traces of the Forecast page's chart that mark a horizon's forecast (Plotly keeps a
# chart's data on its element).
FAN_MARKERS = """() => {
    const found = [];
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        for (const trace of plot.data || []) {
            if (trace.meta && trace.meta.horizon) {
                found.push({horizon: trace.meta.horizon, x: Array.from(trace.x), y: Array.from(trace.y)});
            }
        }
    }
    return found;
}"""


def test_forecast_page_draws_the_fan_and_shows_every_horizons_forecast(page, dashboard, filled_store):
    open_page(page, dashboard)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    context = Context(load_settings(data_dir=filled_store["STOCKCAST_DATA_DIR"], tickers=TICKERS))
    logged = context.store.load_forecasts(ticker="AAPL")
    batch = logged.loc[logged["origin"] == "batch"]
    newest = batch.loc[batch["as_of"] == batch["as_of"].max()].drop_duplicates("horizon", keep="last")
    assert sorted(newest["horizon"]) == HORIZONS  # else the checks below miss a horizon
    metrics = page.locator("[data-testid=stMetricValue]").all_inner_texts()
    labels = " ".join(page.locator("[data-testid=stMetricLabel]").all_inner_texts())
    for stored in newest.itertuples():
        assert f"{stored.predicted_close:,.2f}" in metrics
        assert str(stored.target_date) in labels
    assert page.locator(".js-plotly-plot .candlestick, .js-plotly-plot g.trace").count() > 0
    drawn = {marker["horizon"]: marker for marker in page.evaluate(FAN_MARKERS)}
    assert sorted(drawn) == HORIZONS
    for stored in newest.itertuples():
        marker = drawn[stored.horizon]
        assert [str(pd.Timestamp(x).date()) for x in marker["x"]] == [str(stored.target_date)]
        assert marker["y"] == pytest.approx([stored.predicted_close])
    photograph(page, "forecast")

    before = context.store.count_forecasts()
    page.get_by_role("button", name="Request a fresh forecast").click()
    answer = page.locator("[data-testid=stAlertContentSuccess]")
    answer.wait_for(timeout=60_000)
    assert context.store.count_forecasts() == before + len(HORIZONS)  # one logged per horizon
    api_logged = context.store.load_forecasts(ticker="AAPL")
    served = api_logged.loc[api_logged["origin"] != "batch"].sort_values("id").tail(len(HORIZONS))
    assert sorted(served["horizon"]) == HORIZONS
    for each in served.itertuples():
        assert f"{each.target_date}: {each.predicted_close:,.2f}" in answer.inner_text()  # served == logged


# The traces of the History page's first chart, as the browser holds them (Plotly keeps a
# chart's data on its element).
HISTORY_TRACES = """() => {
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        const traces = plot.data || [];
        if (traces.some((trace) => trace.name === 'actual')) {
            return traces.map((trace) => ({name: trace.name, x: Array.from(trace.x), y: Array.from(trace.y)}));
        }
    }
    return null;
}"""


def _points(dates, values) -> dict[str, float]:
    return {str(pd.Timestamp(day).date()): float(value) for day, value in zip(dates, values, strict=True)}


def test_history_page_shows_the_logged_forecasts_and_their_actuals(page, dashboard, filled_store):
    """AAPL's daily forecasts one session ahead (the horizon shown first) from the replay and
    the run, each with the close that came true once its day had passed: drawn in the chart,
    listed in the table, in the CSV download; and a row of scores per horizon."""
    context = Context(load_settings(data_dir=filled_store["STOCKCAST_DATA_DIR"], tickers=TICKERS))
    logged = context.store.load_forecasts(ticker="AAPL", horizon=1)
    batch = logged.loc[logged["origin"] == "batch"].sort_values("target_date")
    scored = batch.dropna(subset=["actual_close"])
    # One a session for the 20 replayed (the run on the last day logs the same one again), all
    # scored but the newest, whose day has not come.
    assert len(batch) == 20 and len(scored) == 19 and scored["target_date"].max() < batch["target_date"].max()

    open_page(page, f"{dashboard}/history")
    page.wait_for_selector("[data-testid=stDataFrame]", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    photograph(page, "history")

    traces = {trace["name"]: trace for trace in page.evaluate(HISTORY_TRACES) or []}
    assert {"forecast", "actual"} <= set(traces)
    drawn_forecasts = _points(traces["forecast"]["x"], traces["forecast"]["y"])
    for day, value in _points(batch["target_date"], batch["predicted_close"]).items():
        assert drawn_forecasts.get(day) == pytest.approx(value), day
    assert _points(traces["actual"]["x"], traces["actual"]["y"]) == pytest.approx(
        _points(scored["target_date"], scored["actual_close"])
    )

    grids = page.locator("[data-testid=stDataFrame] [role=grid]")
    assert int(grids.first.get_attribute("aria-rowcount")) - 1 == len(
        traces["forecast"]["x"]
    )  # one header row
    assert int(grids.last.get_attribute("aria-rowcount")) - 1 == len(HORIZONS)  # the scores by horizon

    with page.expect_download() as download:
        page.get_by_test_id("stDownloadButton").get_by_role("button", name="Download as CSV").click()
    table = pd.read_csv(download.value.path())
    listed = table.loc[table["origin"] == "batch"].sort_values("target_date")
    assert _points(listed["target_date"], listed["predicted_close"]) == pytest.approx(
        _points(batch["target_date"], batch["predicted_close"])
    )
    with_actual = listed.dropna(subset=["actual_close"])
    assert _points(with_actual["target_date"], with_actual["actual_close"]) == pytest.approx(
        _points(scored["target_date"], scored["actual_close"])
    )
    assert with_actual["error"].to_numpy() == pytest.approx(
        (with_actual["actual_close"] - with_actual["predicted_close"]).to_numpy()
    )


def _in_a_row(cells: list[str], *values: str) -> bool:
    """Whether ``values`` are next to each other, in order, among a grid's cells."""
    return any(tuple(cells[index : index + len(values)]) == values for index in range(len(cells)))


def test_models_page_lists_every_tickers_champion_at_every_horizon(page, dashboard, filled_store):
    open_page(page, f"{dashboard}/models")
    page.wait_for_selector("[data-testid=stDataFrame] [role=gridcell]", state="attached", timeout=60_000)
    cells = page.locator("[data-testid=stDataFrame]").first.locator("[role=gridcell]").all_inner_texts()
    context = Context(load_settings(data_dir=filled_store["STOCKCAST_DATA_DIR"], tickers=TICKERS))
    champions = [
        (ticker, horizon, champion.version)
        for ticker in TICKERS.split(",")
        for horizon in HORIZONS
        if (champion := context.registry.champion(ticker, horizon)) is not None
    ]
    assert {ticker for ticker, _, _ in champions} == set(TICKERS.split(","))
    for ticker, horizon, version in champions:
        assert _in_a_row(cells, ticker, str(horizon), "champion", version), (ticker, horizon)
    assert cells.count("champion") == len(champions)
    photograph(page, "models")


def test_monitoring_page_shows_each_tickers_drift_status(page, dashboard, filled_store):
    open_page(page, f"{dashboard}/monitoring")
    page.wait_for_selector("[data-testid=stDataFrame] [role=gridcell]", state="attached", timeout=60_000)
    cells = page.locator("[data-testid=stDataFrame]").first.locator("[role=gridcell]").all_inner_texts()
    context = Context(load_settings(data_dir=filled_store["STOCKCAST_DATA_DIR"], tickers=TICKERS))
    latest = context.store.load_monitoring(latest_only=True, horizon=None)
    # A verdict per ticker and horizon, else the loop below checks less than it says.
    assert sorted(zip(latest["ticker"], latest["horizon"], strict=True)) == [
        (ticker, horizon) for ticker in sorted(TICKERS.split(",")) for horizon in HORIZONS
    ]
    for ticker, horizon, status in zip(latest["ticker"], latest["horizon"], latest["status"], strict=True):
        assert _in_a_row(cells, ticker, str(horizon), status), (ticker, horizon)  # the columns in order
    page.get_by_text("Show the report").click()
    page.wait_for_selector("iframe", timeout=30_000)  # the Evidently report, embedded
    photograph(page, "monitoring")
