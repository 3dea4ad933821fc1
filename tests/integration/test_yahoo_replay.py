"""yfinance's own request-and-parse path, driven offline by a replayed chart response, and
Yahoo's failures: refused connections, hangs, rate limits, empty and malformed answers,
unknown symbols and partial answers."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import date

import numpy as np
import pandas as pd
import pytest
from tests.conftest import clean_environment
from tests.e2e.test_daily_cycle import STOCKCAST
from tests.faults import stored_prices
from tests.services import free_port
from tests.yahoo_replay import chart_responder, recorded_chart, replay_session

from stockcast.context import Context
from stockcast.ingest.ingest import ingest
from stockcast.ingest.sources import AutoSource, SampleSource, SourceUnavailableError
from stockcast.ingest.yahoo import YahooSource, download_to_long
from stockcast.settings import load_settings


@pytest.fixture
def chart() -> bytes:
    return recorded_chart()


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


@pytest.mark.fault(
    "Yahoo: a ticker that does not exist",
    "That ticker alone fails with Yahoo's reason; the others are fetched",
)
def test_unknown_ticker_fails_alone_with_a_reason(chart, tmp_path):
    session, _ = replay_session(chart_responder({"AAPL": chart}))
    fetched = yahoo(session, tmp_path).fetch(["AAPL", "NOPE"], date(2024, 1, 1), date(2024, 12, 31))
    assert set(fetched.bars["ticker"]) == {"AAPL"}
    assert fetched.failures.get("NOPE")


@pytest.mark.fault(
    "Yahoo: HTTP 429 Too Many Requests on every try",
    "Retried with exponential backoff (STOCKCAST_YAHOO_RETRIES), then `Yahoo Finance unreachable "
    "(N attempts): ... Too Many Requests`",
)
def test_rate_limit_is_retried_with_backoff_then_reported(tmp_path):
    session, adapter = replay_session(
        chart_responder({}, status_for_others=429, body_for_others=b"Too Many Requests")
    )
    with pytest.raises(SourceUnavailableError, match=r"(?i)rate|too many"):
        yahoo(session, tmp_path, retries=2).fetch(["AAPL"], date(2024, 1, 1), date(2024, 2, 1))
    chart_calls = [url for url in adapter.urls if "/finance/chart/AAPL" in url]
    assert len(chart_calls) >= 3  # the first try and two retries


@pytest.mark.fault(
    "Yahoo: malformed JSON in the chart answer",
    "Reported as that ticker's failure with the parse error; nothing stored for it",
)
def test_malformed_json_is_reported_per_ticker(tmp_path):
    session, _ = replay_session(chart_responder({"AAPL": b"{not json"}))
    fetched = yahoo(session, tmp_path, retries=0).fetch(["AAPL"], date(2024, 1, 1), date(2024, 2, 1))
    assert fetched.bars.empty
    assert fetched.failures["AAPL"]


@pytest.mark.fault(
    "Yahoo: a connection that never answers (timeout)",
    "A hard deadline per call ends the wait: `no answer from Yahoo within N s`",
)
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


@pytest.mark.fault(
    "Yahoo hangs while the source is `auto` (the default)",
    "Falls back to the bundled sample and says so in a warning; rows are stored with source='sample'",
)
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


@pytest.mark.fault(
    "Yahoo: connection refused (the real yfinance and curl transport, through a proxy port nothing listens on)",
    "`--source yahoo` exits 1 with `Yahoo Finance unreachable (N attempts): ... Failed to connect`; "
    "stored bars unchanged. `--source auto` warns and uses the bundled sample",
)
def test_refused_connections_to_yahoo_fail_clearly_and_keep_the_store(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    env = clean_environment(
        STOCKCAST_DATA_DIR=str(tmp_path / "data"),
        STOCKCAST_START_DATE="2012-01-01",
        STOCKCAST_YAHOO_RETRIES="1",
        HTTPS_PROXY=closed,
        HTTP_PROXY=closed,
        https_proxy=closed,
        http_proxy=closed,
    )
    for name in ("YF_DISABLE_CURL_CFFI", "NO_PROXY", "no_proxy"):  # yfinance's default transport
        env.pop(name, None)

    def stockcast(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [STOCKCAST, *arguments]
        return subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
        )

    seeded = stockcast("ingest", "--source", "sample", "--tickers", "IBM")
    assert seeded.returncode == 0, seeded.stderr
    url = f"sqlite:///{tmp_path / 'data' / 'stockcast.db'}"
    before = stored_prices(url)

    refused = stockcast("ingest", "--source", "yahoo", "--tickers", "IBM")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "Yahoo Finance unreachable (2 attempts)" in refused.stderr, refused.stderr
    assert "Failed to connect" in refused.stderr or "Connection refused" in refused.stderr, refused.stderr
    assert stored_prices(url).equals(before)

    fallback = stockcast("ingest", "--source", "auto", "--tickers", "IBM")
    assert fallback.returncode == 0, fallback.stderr
    assert "Yahoo Finance unreachable" in fallback.stderr and "bundled sample" in fallback.stderr
    assert stored_prices(url).equals(before)  # the sample's bars again: nothing new, nothing lost


def empty_chart(chart: bytes) -> bytes:
    """Yahoo's answer for a range with no sessions: a result without timestamps or quotes."""
    payload = json.loads(chart)
    result = payload["chart"]["result"][0]
    result.pop("timestamp", None)
    result.pop("events", None)
    result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    return json.dumps(payload).encode()


@pytest.mark.fault(
    "Yahoo: an empty frame (a chart answer without a single bar)",
    "That ticker fails with `no price data found`; no rows, no raw batch, nothing else touched",
)
def test_an_empty_answer_is_a_failure_not_an_empty_success(chart, tmp_path):
    session, _ = replay_session(chart_responder({"AAPL": empty_chart(chart)}))
    context = Context(load_settings(tickers="AAPL", start_date="2024-01-01", end_date="2024-02-01"))
    context.__dict__["source"] = yahoo(session, tmp_path, retries=0)
    report = ingest(context, ["AAPL"])
    assert report.rows_written == {} and report.raw_batch is None
    assert "no price data found" in report.failures["AAPL"]
    assert context.store.count_prices() == 0


@pytest.mark.fault(
    "Yahoo: a partial answer (one ticker's chart fails with HTTP 500, the other's arrives)",
    "The ticker that arrived is validated and stored; the other is reported with its reason "
    "and keeps its stored bars unchanged",
)
def test_a_partial_answer_stores_what_arrived_and_keeps_the_rest(chart, tmp_path, make_bars):
    session, _ = replay_session(
        chart_responder({"AAPL": chart}, status_for_others=500, body_for_others=b"oops")
    )
    context = Context(load_settings(tickers="AAPL,MSFT", start_date="2024-01-01", end_date="2024-12-30"))
    context.__dict__["source"] = yahoo(session, tmp_path, retries=0)
    stored_msft = make_bars(("MSFT",), days=40, start="2023-06-01")
    context.store.upsert_prices(stored_msft)
    before = context.store.load_prices(tickers=["MSFT"])

    report = ingest(context, ["AAPL", "MSFT"])
    assert report.rows_written == {"AAPL": 251}
    assert report.failures.keys() == {"MSFT"} and report.failures["MSFT"]
    pd.testing.assert_frame_equal(context.store.load_prices(tickers=["MSFT"]), before)
    assert len(context.store.load_prices(tickers=["AAPL"])) == 251


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
