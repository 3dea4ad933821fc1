"""Trading calendars: which exchange a ticker trades on and when its next session is."""

from __future__ import annotations

import threading
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import exchange_calendars

# Yahoo's ticker suffixes mapped to ISO MIC calendars of exchange-calendars.
SUFFIX_TO_CALENDAR = {
    "AS": "XAMS",
    "AX": "XASX",
    "BR": "XBRU",
    "DE": "XETR",
    "F": "XFRA",
    "HK": "XHKG",
    "KS": "XKRX",
    "L": "XLON",
    "MC": "XMAD",
    "MI": "XMIL",
    "PA": "XPAR",
    "SA": "BVMF",
    "SI": "XSES",
    "SS": "XSHG",
    "SW": "XSWX",
    "SZ": "XSHG",
    "T": "XTKS",
    "TO": "XTSE",
    "TW": "XTAI",
    "V": "XTSE",
}
DEFAULT_CALENDAR = "XNYS"


def calendar_name_for(ticker: str) -> str:
    """The exchange calendar of a Yahoo ticker: its suffix decides, US listings by default."""
    if "." in ticker:
        suffix = ticker.rsplit(".", 1)[1].upper()
        if suffix in SUFFIX_TO_CALENDAR:
            return SUFFIX_TO_CALENDAR[suffix]
    return DEFAULT_CALENDAR


_calendar_lock = threading.Lock()


@lru_cache(maxsize=32)
def _build_calendar(name: str) -> exchange_calendars.ExchangeCalendar:
    import exchange_calendars

    # The default window starts 20 years back; bundled history reaches back to 2000.
    return exchange_calendars.get_calendar(name, start="1995-01-01")


def get_calendar(name: str) -> exchange_calendars.ExchangeCalendar:
    """A calendar, built once per process. Building one takes about a second; the lock keeps
    concurrent first requests from each building their own."""
    with _calendar_lock:
        return _build_calendar(name)


def calendar_for(ticker: str) -> exchange_calendars.ExchangeCalendar:
    return get_calendar(calendar_name_for(ticker))


def next_session(ticker: str, after: date) -> date:
    """The first trading session of the ticker's exchange strictly after ``after``."""
    calendar = calendar_for(ticker)
    day = pd.Timestamp(after)
    if day >= calendar.last_session:
        raise ValueError(f"{after} is past the end of the {calendar.name} calendar")
    if calendar.is_session(day):
        return calendar.next_session(day).date()
    return calendar.date_to_session(day, direction="next").date()


def session_after(ticker: str, after: date, sessions: int = 1) -> date:
    """The ``sessions``-th trading session of the ticker's exchange strictly after ``after``:
    the target date of a forecast ``sessions`` ahead (holidays and weekends are not sessions)."""
    if sessions < 1:
        raise ValueError(f"a horizon is at least one session, got {sessions}")
    if sessions == 1:
        return next_session(ticker, after)
    calendar = calendar_for(ticker)
    first = pd.Timestamp(next_session(ticker, after))
    window = calendar.sessions_window(first, sessions)
    if len(window) < sessions:
        raise ValueError(
            f"{sessions} sessions after {after} are past the end of the {calendar.name} calendar"
        )
    return window[sessions - 1].date()


def session_on_or_after(ticker: str, day: date) -> date:
    """The session a date falls on, or the next one when the exchange is closed that day."""
    calendar = calendar_for(ticker)
    return calendar.date_to_session(pd.Timestamp(day), direction="next").date()


def exchange_today(ticker: str, now: datetime) -> date:
    """The calendar date at the ticker's exchange at the instant ``now`` (timezone-aware)."""
    return pd.Timestamp(now).tz_convert(calendar_for(ticker).tz).date()


def is_session_closed(ticker: str, session: date, now: datetime) -> bool:
    """True once the exchange has closed for ``session``: only then is its bar final."""
    calendar = calendar_for(ticker)
    day = pd.Timestamp(session)
    if not calendar.is_session(day):
        return True
    return pd.Timestamp(now) >= calendar.session_close(day)
