"""yfinance's own request-and-parse path, driven offline by a replayed chart response."""

from __future__ import annotations

import json
import threading
from datetime import date

import numpy as np
import pandas as pd
import pytest
from tests.yahoo_replay import chart_responder, recorded_chart, replay_session

from stockcast.ingest.sources import AutoSource, SampleSource, SourceUnavailableError
from stockcast.ingest.yahoo import YahooSource, download_to_long


@pytest.fixture
def chart(shared_data) -> bytes:
    return recorded_chart(shared_data)


def yahoo(session, tmp_path, **options) -> YahooSource:
    return YahooSource(cache_dir=str(tmp_path / "cache"), session=session, backoff_seconds=0, **options)


def test_recorded_chart_becomes_canonical_bars(chart, tmp_path):
    session, adapter = replay_session(chart_responder({"AAPL": chart}))
    fetched = yahoo(session, tmp_path).fetch(["AAPL"], date(2024, 1, 1), date(2024, 12, 30))
    bars = fetched.bars
    payload = json.loads(chart)["chart"]["result"][0]
    quote = payload["indicators"]["quote"][0]
    assert len(bars) == len(payload["timestamp"]) == 251
    assert fetched.failures == {}
    assert bars["date"].dt.tz is None
    assert bars["date"].iloc[0] == pd.Timestamp("2024-01-02")
    assert bars["date"].iloc[-1] == pd.Timestamp("2024-12-30")  # stockcast's end is inclusive
    assert np.allclose(bars["close"], quote["close"])
    assert np.allclose(bars["adj_close"], payload["indicators"]["adjclose"][0]["adjclose"])
    dividends = bars.loc[bars["dividends"] > 0, ["date", "dividends"]]
    assert dividends["dividends"].tolist() == [0.24, 0.25, 0.25, 0.25]
    assert (bars["split_ratio"] == 1.0).all()
    assert set(bars["source"]) == {"yahoo"}
    assert any("/v8/finance/chart/AAPL" in url and "events=div" in url for url in adapter.urls)
    assert (tmp_path / "cache" / "yfinance").is_dir()  # yfinance's caches stay in our data folder


def test_unknown_ticker_fails_alone_with_a_reason(chart, tmp_path):
    session, _ = replay_session(chart_responder({"AAPL": chart}))
    fetched = yahoo(session, tmp_path).fetch(["AAPL", "NOPE"], date(2024, 1, 1), date(2024, 12, 31))
    assert set(fetched.bars["ticker"]) == {"AAPL"}
    assert fetched.failures.get("NOPE")


def test_rate_limit_is_retried_with_backoff_then_reported(tmp_path):
    session, adapter = replay_session(
        chart_responder({}, status_for_others=429, body_for_others=b"Too Many Requests")
    )
    with pytest.raises(SourceUnavailableError, match=r"(?i)rate|too many"):
        yahoo(session, tmp_path, retries=2).fetch(["AAPL"], date(2024, 1, 1), date(2024, 2, 1))
    chart_calls = [url for url in adapter.urls if "/finance/chart/AAPL" in url]
    assert len(chart_calls) >= 3  # the first try and two retries


def test_malformed_json_is_reported_per_ticker(tmp_path):
    session, _ = replay_session(chart_responder({"AAPL": b"{not json"}))
    fetched = yahoo(session, tmp_path, retries=0).fetch(["AAPL"], date(2024, 1, 1), date(2024, 2, 1))
    assert fetched.bars.empty
    assert fetched.failures["AAPL"]


def test_a_yahoo_that_never_answers_hits_the_hard_deadline(tmp_path):
    release = threading.Event()

    def hang(url: str) -> tuple[int, bytes]:
        release.wait(60)
        return 500, b""

    session, _ = replay_session(hang)
    try:
        with pytest.raises(SourceUnavailableError, match="no answer from Yahoo"):
            yahoo(session, tmp_path, timeout_seconds=0.5, retries=0).fetch(
                ["AAPL"], date(2024, 1, 1), date(2024, 2, 1)
            )
    finally:
        release.set()


def test_auto_uses_the_sample_when_yahoo_hangs(tmp_path):
    release = threading.Event()
    session, _ = replay_session(lambda url: (release.wait(60), (500, b""))[1])
    try:
        source = AutoSource(yahoo(session, tmp_path, timeout_seconds=0.5, retries=0), SampleSource())
        fetched = source.fetch(["IBM"], date(2012, 1, 1), date(2012, 3, 1))
    finally:
        release.set()
    assert set(fetched.bars["source"]) == {"sample"} and len(fetched.bars) > 30
    assert "unreachable" in fetched.note


def test_download_frames_with_multiindex_and_time_zone_are_flattened():
    index = pd.DatetimeIndex(["2024-03-04", "2024-03-05"]).tz_localize("America/New_York")
    columns = pd.MultiIndex.from_product(
        [["Close", "Open", "High", "Low", "Volume"], ["AAPL", "MSFT"]], names=["Price", "Ticker"]
    )
    wide = pd.DataFrame(np.arange(20, dtype=float).reshape(2, 10) + 1, index=index, columns=columns)
    wide.loc[index[0], [("Close", "MSFT"), ("Open", "MSFT"), ("High", "MSFT"), ("Low", "MSFT")]] = np.nan
    long = download_to_long(wide)
    assert list(long["ticker"]) == ["AAPL", "AAPL", "MSFT"]
    assert long["date"].dt.tz is None and long["date"].iloc[0] == pd.Timestamp("2024-03-04")
    assert long.loc[2, "close"] == wide.loc[index[1], ("Close", "MSFT")]
