"""Forecast target dates follow the ticker's own exchange calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stockcast.calendars import (
    calendar_name_for,
    is_session_closed,
    next_session,
    session_after,
    session_on_or_after,
)


def test_next_session_skips_weekends_and_holidays():
    assert next_session("AAPL", date(2013, 3, 1)) == date(2013, 3, 4)  # Friday -> Monday
    assert next_session("AAPL", date(2013, 3, 28)) == date(2013, 4, 1)  # Good Friday closed
    assert next_session("AAPL", date(2024, 12, 24)) == date(2024, 12, 26)


def test_suffix_picks_the_exchange():
    assert calendar_name_for("2330.TW") == "XTAI"
    assert calendar_name_for("VOD.L") == "XLON"
    assert calendar_name_for("BRK-B") == "XNYS"
    # Taiwan is open on US Thanksgiving; New York is not.
    assert next_session("2330.TW", date(2024, 11, 27)) == date(2024, 11, 28)
    assert next_session("AAPL", date(2024, 11, 27)) == date(2024, 11, 29)


def test_holiday_maps_to_the_next_session():
    assert session_on_or_after("AAPL", date(2024, 7, 4)) == date(2024, 7, 5)


def test_a_bar_is_final_only_after_the_close():
    before_close = datetime(2024, 3, 5, 18, 0, tzinfo=UTC)  # 13:00 New York
    after_close = datetime(2024, 3, 5, 21, 30, tzinfo=UTC)
    assert not is_session_closed("AAPL", date(2024, 3, 5), before_close)
    assert is_session_closed("AAPL", date(2024, 3, 5), after_close)


def test_a_target_h_sessions_ahead_skips_weekends_and_holidays():
    # From Friday 20 Dec 2024: 23, 24, (25 closed), 26, 27, 30 Dec.
    assert session_after("AAPL", date(2024, 12, 20), 1) == date(2024, 12, 23)
    assert session_after("AAPL", date(2024, 12, 20), 5) == date(2024, 12, 30)
    # Twenty sessions cross New Year, the national day of mourning (9 Jan 2025, closed) and
    # Martin Luther King Day (20 Jan).
    assert session_after("AAPL", date(2024, 12, 20), 20) == date(2025, 1, 23)
    # A day that is no session counts from the next one.
    assert session_after("AAPL", date(2024, 12, 21), 1) == date(2024, 12, 23)
    # Each exchange its own: Taiwan trades on US Thanksgiving (28 Nov 2024).
    assert session_after("2330.TW", date(2024, 11, 27), 2) == date(2024, 11, 29)
    assert session_after("AAPL", date(2024, 11, 27), 2) == date(2024, 12, 2)


def test_a_horizon_is_at_least_one_session():
    import pytest

    with pytest.raises(ValueError, match="at least one session"):
        session_after("AAPL", date(2024, 12, 20), 0)


def test_a_built_calendar_is_kept_for_the_next_process_and_read_back_the_same(tmp_path, monkeypatch):
    """Building a calendar is 0.2-0.4 s of every command and of an API's first forecast: a
    built one is kept in the data folder, read back in 10 ms, and built again when the kept
    file is unreadable or from another day or version (which it replaces)."""
    import exchange_calendars

    from stockcast import calendars

    monkeypatch.setattr(calendars, "_kept_in", [])
    calendars.keep_calendars_in(tmp_path)
    calendars._build_calendar.cache_clear()
    try:
        older = tmp_path / "XNYS-1995-01-01-0.0.1-2020-01-02.pkl"
        older.write_bytes(b"another version's calendar")
        built = calendars.get_calendar("XNYS")
        assert [path.name for path in tmp_path.iterdir()] == [calendars._kept_file("XNYS").name]

        calendars._build_calendar.cache_clear()
        monkeypatch.setattr(
            exchange_calendars, "get_calendar", lambda *args, **kwargs: pytest.fail("built again")
        )
        kept = calendars.get_calendar("XNYS")
        assert kept is not built and kept.sessions.equals(built.sessions)
        assert kept.last_session == built.last_session
        assert calendars.session_after("AAPL", date(2024, 12, 31), 5) == date(2025, 1, 8)  # 1 Jan shut

        calendars._kept_file("XNYS").write_bytes(b"half a calendar")
        calendars._build_calendar.cache_clear()
        monkeypatch.undo()
        calendars.keep_calendars_in(tmp_path)
        assert calendars.get_calendar("XNYS").sessions.equals(built.sessions)  # built again, kept again
        calendars._build_calendar.cache_clear()
        assert calendars.get_calendar("XNYS").sessions.equals(built.sessions)
    finally:
        calendars._build_calendar.cache_clear()
        calendars._kept_in.clear()
