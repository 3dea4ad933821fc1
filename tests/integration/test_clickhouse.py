"""The analytics copy in ClickHouse (issue 21), against a real ClickHouse server on 127.0.0.1
(Debian's clickhouse-server): after `stockcast run` ClickHouse holds the same forecasts and
monitoring rows as the store, a rerun adds none, a forecast scored later is one row with its
outcome, a ClickHouse outage during `run` loses and blocks nothing (a warning; `stockcast
export clickhouse` fills the gap), and the documented SQL file answers error over time."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import SAMPLE_FAST
from tests.services import free_port
from typer.testing import CliRunner

from stockcast.analytics.clickhouse import ClickHouse
from stockcast.cli import app
from stockcast.context import Context
from stockcast.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
FAST = {**SAMPLE_FAST, "STOCKCAST_TICKERS": "AAPL,MSFT"}
_databases = itertools.count()


@pytest.fixture
def clickhouse(clickhouse_server, monkeypatch):
    """A database of its own on the shared server, named in STOCKCAST_CLICKHOUSE_URL."""
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    url = f"{clickhouse_server}/stockcast_{next(_databases)}"
    monkeypatch.setenv("STOCKCAST_CLICKHOUSE_URL", url)
    return ClickHouse(url)


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def rows_in(clickhouse: ClickHouse, table: str, columns: str) -> pd.DataFrame:
    text = clickhouse.execute(
        f"SELECT {columns} FROM {clickhouse.database}.{table} FINAL ORDER BY {columns.split(',', maxsplit=1)[0]} "
        "FORMAT TabSeparatedWithNames"
    )
    return pd.read_csv(io.StringIO(text), sep="\t", na_values=["\\N"])


def test_run_copies_the_forecasts_and_monitoring_and_a_rerun_adds_none(clickhouse):
    first = cli("run")
    assert first.exit_code == 0, first.output
    assert "ClickHouse: 2 forecast row(s) and 2 monitoring row(s) sent" in first.output
    store = Context(load_settings()).store
    logged = store.load_forecasts().sort_values("request_id").reset_index(drop=True)
    copied = rows_in(clickhouse, "forecasts", "request_id,ticker,predicted_close,lower,upper,model_version")
    assert list(copied["request_id"]) == list(logged["request_id"])
    for column in ("predicted_close", "lower", "upper"):
        assert copied[column].tolist() == pytest.approx(logged[column].tolist(), rel=1e-12)
    assert clickhouse.count("monitoring") == len(store.load_monitoring()) == 2

    again = cli("run")
    assert again.exit_code == 0, again.output
    assert clickhouse.count("forecasts") == len(store.load_forecasts()) == 2
    assert clickhouse.count("monitoring") == len(store.load_monitoring())


def test_a_forecast_scored_later_is_one_row_with_its_outcome(clickhouse):
    assert cli("run").exit_code == 0
    context = Context(load_settings())
    forecast = context.store.load_forecasts(ticker="AAPL").iloc[0]
    # The next session's bar arrives; `stockcast actuals` scores the forecast.
    bar = context.store.load_prices(["AAPL"]).tail(1).drop(columns="ingested_at", errors="ignore")
    bar = bar.assign(
        date=pd.Timestamp(forecast["target_date"]), close=float(forecast["predicted_close"]) * 1.01
    )
    context.store.upsert_prices(bar)
    assert cli("actuals").exit_code == 0
    exported = cli("export", "clickhouse")
    assert exported.exit_code == 0, exported.output

    scored = rows_in(clickhouse, "forecasts", "request_id,actual_close,error,covered")
    mine = scored[scored["request_id"] == forecast["request_id"]]
    stored = context.store.load_forecasts(ticker="AAPL").iloc[0]
    assert len(mine) == 1 and math.isclose(
        mine["actual_close"].iloc[0], stored["actual_close"], rel_tol=1e-12
    )
    assert clickhouse.count("forecasts") == 2, "scoring replaced the row; it added none"

    # The documented query: error over time per model, from the scored rows.
    sql = (ROOT / "deploy" / "clickhouse" / "error_over_time.sql").read_text()
    query = "\n".join(line for line in sql.splitlines() if not line.startswith("--")).rstrip().rstrip(";")
    answer = clickhouse.execute(query.replace("stockcast.", f"{clickhouse.database}."))
    table = pd.read_csv(io.StringIO(answer), sep="\t")
    assert len(table) == 1 and table["scored"].iloc[0] == 1
    assert math.isclose(table["rmse"].iloc[0], abs(stored["error"]), rel_tol=1e-9)


def test_an_outage_during_run_blocks_nothing_and_export_fills_the_gap(clickhouse, monkeypatch):
    real = clickhouse
    monkeypatch.setenv("STOCKCAST_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port()}/{real.database}")
    monkeypatch.setenv("STOCKCAST_DATABASE_TIMEOUT_SECONDS", "2")
    down = cli("run")
    assert down.exit_code == 0, down.output
    assert "ClickHouse at" in down.output and "is unreachable" in down.output
    assert "nothing was lost" in down.output
    store = Context(load_settings()).store
    assert len(store.load_forecasts()) == 2, "the forecasts are logged in the store all the same"

    monkeypatch.setenv("STOCKCAST_CLICKHOUSE_URL", f"{real.endpoint.rstrip('/')}/{real.database}")
    filled = cli("export", "clickhouse")
    assert filled.exit_code == 0, filled.output
    assert real.count("forecasts") == 2 and real.count("monitoring") == 2


def test_a_url_that_is_not_http_is_refused_with_what_was_expected(monkeypatch, isolated_environment):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    for url, problem in (
        ("clickhouse://127.0.0.1:9000/stockcast", "expected http(s)://user:password@host:port/database"),
        ("http://127.0.0.1:8123/drop table x", "not a ClickHouse database name"),
    ):
        monkeypatch.setenv("STOCKCAST_CLICKHOUSE_URL", url)
        refused = cli("export", "clickhouse")
        assert refused.exit_code != 0 and problem in refused.output, refused.output
        assert "STOCKCAST_CLICKHOUSE_URL" in refused.output


def test_tables_from_before_horizons_are_upgraded_and_keep_each_horizon_apart(clickhouse, monkeypatch):
    """A database made by the previous release (no horizon column; monitoring keyed by ticker
    and day) is upgraded by the next export: the column is added and ends the monitoring key,
    so the verdicts of two horizons on one day stay two rows under FINAL."""
    monkeypatch.setenv("STOCKCAST_HORIZONS", "1,5")
    database = f"{clickhouse.database}"
    clickhouse.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    clickhouse.execute(
        f"CREATE TABLE {database}.monitoring (ticker String, as_of Date, model_version Nullable(String), "
        "evaluated UInt32, rolling_rmse Nullable(Float64), rolling_naive_rmse Nullable(Float64), "
        "backtest_rmse Nullable(Float64), rmse_ratio Nullable(Float64), days_above UInt32, "
        "coverage Nullable(Float64), directional_accuracy Nullable(Float64), mae Nullable(Float64), "
        "drift_share Nullable(Float64), status String, computed_at DateTime('UTC'), version UInt64"
        ") ENGINE = ReplacingMergeTree(version) ORDER BY (ticker, as_of)"
    )
    clickhouse.execute(
        f"INSERT INTO {database}.monitoring (ticker, as_of, evaluated, days_above, status, computed_at, version) "
        "VALUES ('OLD', '2020-01-02', 0, 0, 'ok', '2020-01-02 22:00:00', 1)"
    )
    first = cli("run")
    assert first.exit_code == 0, first.output
    assert "ClickHouse: " in first.output and "sent" in first.output, first.output
    copied = rows_in(clickhouse, "monitoring", "ticker,horizon,as_of,status")
    assert copied.loc[copied["ticker"] == "OLD", "horizon"].tolist() == [1]  # kept, one session ahead
    ours = copied[copied["ticker"] != "OLD"]
    assert sorted(ours["horizon"]) == [1, 1, 5, 5]  # AAPL and MSFT at both horizons, one day
    forecasts = rows_in(clickhouse, "forecasts", "request_id,horizon,model_name")
    assert sorted(forecasts["horizon"]) == [1, 1, 5, 5]
    assert set(forecasts.loc[forecasts["horizon"] == 5, "model_name"]) == {
        "stockcast-AAPL-h5",
        "stockcast-MSFT-h5",
    }
    again = cli("export", "clickhouse")
    assert again.exit_code == 0, again.output
    assert clickhouse.count("monitoring") == 5
