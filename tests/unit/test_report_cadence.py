"""When `stockcast monitor` writes Evidently reports and when a day keeps the latest ones."""

from __future__ import annotations

from datetime import date

from stockcast.monitoring.monitor import DRIFT, OK, WATCH, report_due

MONDAY = date(2024, 3, 4)


def previous(**changes):
    row = {
        "report_as_of": MONDAY,
        "report_uri": "file:///reports/AAA/2024-03-04",
        "model_version": "3",
        "status": OK,
    }
    return row | changes


def test_a_ticker_without_a_report_gets_one():
    assert report_due(None, MONDAY, "3", OK, 5) == "no report yet"
    assert report_due(previous(report_as_of=None, report_uri=None), MONDAY, "3", OK, 5) == "no report yet"


def test_reports_wait_for_the_cadence_in_weekdays():
    assert report_due(previous(), MONDAY, "3", OK, 5) is None  # a rerun of the same day
    assert report_due(previous(), date(2024, 3, 8), "3", OK, 5) is None  # Friday: 4 weekdays
    assert report_due(previous(), date(2024, 3, 10), "3", OK, 5) is None  # Sunday counts none
    assert report_due(previous(), date(2024, 3, 11), "3", OK, 5) == "5 weekdays since the last report"
    assert report_due(previous(), date(2024, 3, 5), "3", OK, 1) == "1 weekdays since the last report"


def test_a_new_champion_gets_a_report_even_on_the_same_day():
    assert report_due(previous(), MONDAY, "4", OK, 5) == "new champion"


def test_a_worse_status_gets_a_report_at_once_a_better_one_waits():
    assert report_due(previous(), date(2024, 3, 5), "3", DRIFT, 5) == "status is now drift"
    assert report_due(previous(), date(2024, 3, 5), "3", WATCH, 5) == "status is now watch"
    assert report_due(previous(status=DRIFT), date(2024, 3, 5), "3", DRIFT, 5) is None
    assert report_due(previous(status=DRIFT), date(2024, 3, 5), "3", OK, 5) is None
