"""Ingestion: fetch, drop unfinished bars, validate each ticker's batch, keep the raw batch,
upsert into the prices table. Rerunning over the same or an overlapping range adds nothing."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from stockcast.calendars import exchange_today, is_session_closed
from stockcast.context import Context
from stockcast.failpoints import failpoint
from stockcast.ingest.bars import InvalidBatchError, validate_bars
from stockcast.ingest.sources import Fetched

log = logging.getLogger(__name__)

# Re-read a few sessions already stored: vendors revise the latest bars after the close.
OVERLAP_DAYS = 7


@dataclass
class IngestReport:
    rows_written: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    source: str = ""
    note: str | None = None
    raw_batch: str | None = None

    @property
    def tickers_ok(self) -> list[str]:
        return [ticker for ticker in self.rows_written if ticker not in self.failures]


def drop_unfinished_bars(bars: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Remove each ticker's bar for a session that has not closed yet: it is still moving."""
    if bars.empty:
        return bars
    keep = pd.Series(True, index=bars.index)
    for ticker, rows in bars.groupby("ticker", sort=False):
        today = exchange_today(str(ticker), now)
        latest = rows["date"].max().date()
        if latest >= today and not is_session_closed(str(ticker), latest, now):
            keep[rows.index[rows["date"].dt.date == latest]] = False
    return bars.loc[keep].reset_index(drop=True)


def fetch_window(context: Context, tickers: list[str]) -> tuple[date, date]:
    """From the configured start, or a few days before the oldest latest stored bar, to today."""
    settings = context.settings
    end = date.fromisoformat(settings.end_date) if settings.end_date else context.now().date()
    start = date.fromisoformat(settings.start_date)
    stored = context.store.price_ranges()
    if all(ticker in stored for ticker in tickers):
        oldest_latest = min(stored[ticker][1] for ticker in tickers)
        start = max(start, oldest_latest - timedelta(days=OVERLAP_DAYS))
    return start, end


def _new_splits(context: Context, fetched: pd.DataFrame) -> list[str]:
    """Tickers whose fetched bars show a split the store has not seen: their whole stored
    history is on the old basis and must be fetched again."""
    splits = fetched.loc[fetched["split_ratio"] != 1.0, ["ticker", "date", "split_ratio"]]
    if splits.empty:
        return []
    known = context.store.load_prices(tickers=splits["ticker"].unique().tolist())
    known = known.loc[known["split_ratio"] != 1.0, ["ticker", "date"]]
    seen = set(zip(known["ticker"], known["date"], strict=True))
    return sorted({t for t, d in zip(splits["ticker"], splits["date"], strict=True) if (t, d) not in seen})


def _keep_raw(context: Context, fetched: Fetched, day: date) -> str | None:
    if fetched.bars.empty:
        return None
    buffer = io.BytesIO()
    fetched.bars.to_parquet(buffer, index=False)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()[:16]
    key = (
        f"raw/prices/{day.isoformat()}/{fetched.source.replace(':', '_').replace('/', '_')}-{digest}.parquet"
    )
    if not context.artifacts.exists(key):
        context.artifacts.write_bytes(key, payload)
    return context.artifacts.url(key)


def ingest(context: Context, tickers: list[str]) -> IngestReport:
    now = pd.Timestamp(context.now())
    start, end = fetch_window(context, tickers)
    fetched = context.source.fetch(tickers, start, end)
    report = IngestReport(failures=dict(fetched.failures), source=fetched.source, note=fetched.note)
    resplit = (
        _new_splits(context, fetched.bars) if start > date.fromisoformat(context.settings.start_date) else []
    )
    if resplit:
        log.info("new split for %s: fetching full history again", ", ".join(resplit))
        again = context.source.fetch(resplit, date.fromisoformat(context.settings.start_date), end)
        fetched.bars = pd.concat([fetched.bars[~fetched.bars["ticker"].isin(resplit)], again.bars])
        report.failures |= again.failures
    bars = drop_unfinished_bars(fetched.bars, now)
    valid = []
    for ticker, batch in bars.groupby("ticker", sort=True):
        try:
            valid.append(validate_bars(batch, today=exchange_today(str(ticker), now)))
        except InvalidBatchError as error:
            report.failures[str(ticker)] = str(error)
    if not valid:
        return report
    accepted = pd.concat(valid, ignore_index=True)
    failpoint("ingest.validated")
    report.raw_batch = _keep_raw(context, Fetched(accepted), now.date())
    context.store.upsert_prices(accepted)
    report.rows_written = accepted.groupby("ticker").size().astype(int).to_dict()
    return report
