"""Delayed labels: forecasts scored once their session is stored, on their own price basis,
holidays mapped to the next session, reruns changing nothing."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from stockcast.context import Context
from stockcast.monitoring.actuals import fill_actuals
from stockcast.settings import load_settings


def bars(closes: dict[str, float], ticker: str = "AAA") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ticker,
            "date": pd.to_datetime(list(closes)),
            "open": list(closes.values()),
            "high": [value * 1.01 for value in closes.values()],
            "low": [value * 0.99 for value in closes.values()],
            "close": list(closes.values()),
            "adj_close": list(closes.values()),
            "volume": 1_000_000.0,
            "dividends": 0.0,
            "split_ratio": 1.0,
            "source": "test",
        }
    )


def forecast(request_id: str, as_of: str, target: str, predicted: float, last: float, **extra) -> dict:
    return {
        "request_id": request_id,
        "ticker": "AAA",
        "as_of": date.fromisoformat(as_of),
        "target_date": date.fromisoformat(target),
        "predicted_close": predicted,
        "last_close": last,
        "lower": predicted * 0.98,
        "upper": predicted * 1.02,
        "level": 0.9,
        "model_name": "stockcast-AAA",
        "model_version": "1",
        "model_kind": "ridge",
        "origin": "batch",
        "features": None,
        "created_at": None,
        **extra,
    }


@pytest.fixture
def context():
    return Context(load_settings(tickers="AAA"))


def scored(context: Context) -> pd.DataFrame:
    return context.store.load_forecasts(ticker="AAA").set_index("request_id")


def test_forecasts_are_scored_once_and_open_ones_wait(context):
    context.store.upsert_prices(bars({"2024-06-03": 100.0, "2024-06-04": 103.0}))
    context.store.log_forecasts(
        [
            forecast("a", "2024-06-03", "2024-06-04", predicted=100.5, last=100.0),
            forecast("b", "2024-06-04", "2024-06-05", predicted=104.0, last=103.0),
            forecast("w", "2024-06-03", "2024-06-04", predicted=90.0, last=100.0, origin="what-if"),
        ]
    )
    first = fill_actuals(context, ["AAA"])
    assert (first.filled, first.still_open) == (1, 1)
    row = scored(context).loc["a"]
    assert row["actual_close"] == 103.0 and row["error"] == pytest.approx(2.5)
    assert row["abs_error"] == pytest.approx(2.5) and row["pct_error"] == pytest.approx(250 / 103)
    assert row["naive_error"] == pytest.approx(3.0)  # the naive forecast of that day was 100
    assert not row["covered"]  # 103 is above 100.5 * 1.02
    assert pd.isna(scored(context).loc["w", "actual_close"])  # a what-if is never scored

    again = fill_actuals(context, ["AAA"])
    assert again.filled == 0 and again.still_open == 1
    assert scored(context).loc["a", "evaluated_at"] == row["evaluated_at"]

    context.store.upsert_prices(bars({"2024-06-05": 104.5}))
    later = fill_actuals(context, ["AAA"])
    assert later.filled == 1 and later.still_open == 0
    assert scored(context).loc["b", "covered"]


def test_a_target_that_was_a_holiday_is_scored_on_the_next_session(context):
    # Forecast for Thursday 4 July 2024 (Independence Day: no session); Friday's close answers.
    context.store.upsert_prices(bars({"2024-07-03": 50.0, "2024-07-05": 51.0}))
    context.store.log_forecasts([forecast("h", "2024-07-03", "2024-07-04", predicted=50.5, last=50.0)])
    report = fill_actuals(context, ["AAA"])
    assert report.filled == 1 and report.mapped_to_next_session == 1
    row = scored(context).loc["h"]
    assert row["actual_date"] == date(2024, 7, 5) and row["actual_close"] == 51.0


def test_a_split_since_the_forecast_is_scored_on_the_forecasts_basis(context):
    # Forecast made at 200 before a 2:1 split; the stored history has since been re-based.
    context.store.log_forecasts([forecast("s", "2024-06-10", "2024-06-11", predicted=202.0, last=200.0)])
    context.store.upsert_prices(bars({"2024-06-10": 100.0, "2024-06-11": 101.0}))
    fill_actuals(context, ["AAA"])
    row = scored(context).loc["s"]
    assert row["adjustment"] == pytest.approx(0.5)
    assert row["actual_close"] == pytest.approx(202.0) and row["error"] == pytest.approx(0.0)
    assert row["naive_error"] == pytest.approx(2.0)


def test_the_actuals_command_reports_and_is_safe_to_rerun(context, tmp_path):
    from tests.e2e.test_daily_cycle import run_cli

    context.store.upsert_prices(bars({"2024-06-03": 100.0, "2024-06-04": 103.0}))
    context.store.log_forecasts([forecast("a", "2024-06-03", "2024-06-04", predicted=101.0, last=100.0)])
    env = {"STOCKCAST_DATA_DIR": str(context.settings.data_dir), "STOCKCAST_TICKERS": "AAA"}
    first = run_cli("actuals", env=env)
    assert first.returncode == 0 and "1 forecast(s) scored (AAA 1)" in first.stdout
    second = run_cli("actuals", env=env)
    assert second.returncode == 0 and "0 forecast(s) scored" in second.stdout


def test_a_five_session_forecast_is_scored_once_on_its_own_session_after_a_split(context):
    """Made on Friday 20 Dec 2024 for five sessions ahead: 23, 24, 26, 27 and Monday 30 Dec
    (Christmas is no session). A 2:1 split on the 26th re-bases the stored history. Neither
    the bars of the sessions in between nor a rerun scores it; the 30th does, once, on the
    forecast's own price basis."""
    from stockcast.calendars import session_after

    made = date(2024, 12, 20)
    target = session_after("AAA", made, 5)
    assert target == date(2024, 12, 30)
    context.store.upsert_prices(bars({"2024-12-19": 198.0, "2024-12-20": 200.0}))
    context.store.log_forecasts(
        [
            forecast("one", "2024-12-20", "2024-12-23", predicted=201.0, last=200.0),
            forecast("five", "2024-12-20", target.isoformat(), predicted=204.0, last=200.0, horizon=5),
        ]
    )
    # The 23rd and 24th arrive: the one-session forecast is scored, the five-session one waits.
    context.store.upsert_prices(bars({"2024-12-23": 202.0, "2024-12-24": 203.0}))
    first = fill_actuals(context, ["AAA"])
    assert (first.filled, first.still_open) == (1, 1)
    assert pd.isna(scored(context).loc["five", "actual_close"])
    # The split on the 26th: Yahoo re-bases the whole history, the bars in between arrive.
    context.store.upsert_prices(
        bars(
            {
                "2024-12-19": 99.0,
                "2024-12-20": 100.0,
                "2024-12-23": 101.0,
                "2024-12-24": 101.5,
                "2024-12-26": 102.0,
                "2024-12-27": 102.5,
            }
        )
    )
    waiting = fill_actuals(context, ["AAA"])
    assert (waiting.filled, waiting.still_open) == (0, 1)
    context.store.upsert_prices(bars({"2024-12-30": 103.0}))
    scored_now = fill_actuals(context, ["AAA"])
    assert (scored_now.filled, scored_now.still_open) == (1, 0)
    row = scored(context).loc["five"]
    assert row["horizon"] == 5
    assert row["actual_date"] == target
    assert row["adjustment"] == pytest.approx(0.5)
    assert row["actual_close"] == pytest.approx(206.0)  # 103 on the forecast's pre-split basis
    assert row["error"] == pytest.approx(2.0) and row["naive_error"] == pytest.approx(6.0)
    evaluated_at = row["evaluated_at"]
    # Another bar and another run: it is never scored again.
    context.store.upsert_prices(bars({"2024-12-31": 110.0}))
    assert fill_actuals(context, ["AAA"]).filled == 0
    assert scored(context).loc["five", "evaluated_at"] == evaluated_at
    assert scored(context).loc["five", "actual_close"] == pytest.approx(206.0)
