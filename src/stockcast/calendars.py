"""Trading calendars: which exchange a ticker trades on and when its next session is."""

from __future__ import annotations

import logging
import os
import pickle
import threading
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
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
log = logging.getLogger(__name__)


def calendar_name_for(ticker: str) -> str:
    """The exchange calendar of a Yahoo ticker: its suffix decides, US listings by default."""
    if "." in ticker:
        suffix = ticker.rsplit(".", 1)[1].upper()
        if suffix in SUFFIX_TO_CALENDAR:
            return SUFFIX_TO_CALENDAR[suffix]
    return DEFAULT_CALENDAR


_calendar_lock = threading.Lock()
CALENDAR_START = "1995-01-01"  # the default window starts 20 years back; the sample reaches 2000
_kept_in: list[Path] = []  # where built calendars are kept between processes (``keep_calendars_in``)


def keep_calendars_in(folder: Path) -> None:
    """Keep the calendars this process builds in ``folder``, and read them from there.

    Building a calendar takes 0.2-0.4 s of Python (its holiday rules over thirty years), in every
    command and before a started API's first forecast; reading a built one back takes 10 ms. A
    kept calendar is the one exchange_calendars would build today: its file is named by the
    library's and pandas' versions and the day it was built (a calendar runs a year past its build day), and
    one built on another day or by another version is built again."""
    _kept_in[:] = [folder]


def _kept_file(name: str) -> Path | None:
    if not _kept_in:
        return None
    from importlib.metadata import version

    # Named by the versions that wrote it (a calendar holds pandas objects) and its build day.
    built = datetime.now(UTC).date().isoformat()
    libraries = f"{version('exchange_calendars')}-pandas{pd.__version__}"
    return _kept_in[0] / f"{name}-{CALENDAR_START}-{libraries}-{built}.pkl"


@lru_cache(maxsize=32)
def _build_calendar(name: str) -> exchange_calendars.ExchangeCalendar:
    kept = _kept_file(name)
    if kept is not None and kept.is_file():
        try:
            return pickle.loads(kept.read_bytes())  # noqa: S301  # nosec B301 - written below, by stockcast
        except Exception as error:  # unreadable (a disk full when written): built again
            log.info("the kept %s calendar could not be read (%s); building it", name, error)
    import exchange_calendars

    calendar = exchange_calendars.get_calendar(name, start=CALENDAR_START)
    if kept is not None:
        _keep(kept, calendar)
    return calendar


def _keep(path: Path, calendar: exchange_calendars.ExchangeCalendar) -> None:
    """Write a built calendar whole (a reader never sees half of one) and drop older ones."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(pickle.dumps(calendar))
        os.replace(partial, path)
        for older in path.parent.glob(f"{calendar.name}-*.pkl"):
            if older != path:
                older.unlink(missing_ok=True)
    except OSError as error:  # a read-only or full disk: the calendar is only not kept
        log.info("the %s calendar could not be kept in %s: %s", calendar.name, path.parent, error)


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
