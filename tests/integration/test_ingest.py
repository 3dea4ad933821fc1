"""Ingestion: validated per ticker, idempotent, raw batches kept, nothing of a bad batch stored."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from stockcast.context import Context
from stockcast.ingest.ingest import drop_unfinished_bars, ingest
from stockcast.ingest.sources import AutoSource, Fetched, SampleSource, SourceUnavailableError
from stockcast.settings import load_settings

NOW = datetime(2024, 6, 3, 22, 0, tzinfo=UTC)


class StaticSource:
    name = "static"

    def __init__(self, bars: pd.DataFrame):
        self.bars = bars

    def fetch(self, tickers, start, end):
        keep = self.bars["ticker"].isin(tickers) & self.bars["date"].between(
            pd.Timestamp(start), pd.Timestamp(end)
        )
        return Fetched(self.bars.loc[keep].reset_index(drop=True))


def make_context(bars: pd.DataFrame, tickers: str) -> Context:
    context = Context(load_settings(tickers=tickers, start_date="2015-01-01"), clock=NOW)
    context.source = StaticSource(bars)  # type: ignore[misc]
    return context


def test_rerun_adds_no_rows_and_keeps_one_raw_batch(make_bars):
    bars = make_bars(("AAA", "BBB"), days=60)
    context = make_context(bars, "AAA,BBB")
    first = ingest(context, ["AAA", "BBB"])
    assert first.rows_written == {"AAA": 60, "BBB": 60}
    ingest(context, ["AAA", "BBB"])
    assert context.store.count_prices() == 120
    raw = context.artifacts.list("raw/prices")
    assert len(raw) == 2  # the full first batch and the smaller overlap batch of the rerun
    assert context.artifacts.read_parquet(raw[0])["ticker"].nunique() == 2


@pytest.mark.fault(
    "Prices: one ticker's batch breaks a validation rule",
    "That batch is rejected whole, naming rule and date; the other tickers' batches are stored, "
    "and the raw batch kept holds only what was accepted",
)
def test_a_bad_batch_is_rejected_whole_and_the_good_one_stored(make_bars):
    bars = make_bars(("AAA", "BBB"), days=40)
    bad = bars.index[(bars["ticker"] == "BBB")][25]
    bars.loc[bad, "close"] = -1.0
    context = make_context(bars, "AAA,BBB")
    report = ingest(context, ["AAA", "BBB"])
    assert "BBB" in report.failures
    assert "non-positive price" in report.failures["BBB"]
    assert bars.loc[bad, "date"].date().isoformat() in report.failures["BBB"]
    stored = context.store.load_prices()
    assert set(stored["ticker"]) == {"AAA"}
    assert all(
        "BBB" not in str(context.artifacts.read_parquet(key)["ticker"].unique())
        for key in context.artifacts.list("raw")
    )


def test_unfinished_session_bar_is_not_stored():
    session = pd.Timestamp("2024-03-05")
    bars = pd.DataFrame({"ticker": ["AAPL", "AAPL"], "date": [session - pd.Timedelta(days=1), session]})
    during = pd.Timestamp("2024-03-05 15:00", tz="UTC")  # 10:00 in New York
    after = pd.Timestamp("2024-03-05 21:05", tz="UTC")
    assert drop_unfinished_bars(bars, during)["date"].tolist() == [session - pd.Timedelta(days=1)]
    assert len(drop_unfinished_bars(bars, after)) == 2


class DownSource:
    name = "yahoo"

    def fetch(self, tickers, start, end):
        raise SourceUnavailableError("connection refused")


def test_auto_falls_back_to_the_sample_and_says_so():
    fetched = AutoSource(DownSource(), SampleSource()).fetch(
        ["AAPL", "TSLA"], date(2012, 1, 1), date(2013, 1, 1)
    )
    assert set(fetched.bars["source"]) == {"sample"}
    assert "unreachable" in fetched.note and "connection refused" in fetched.note
    assert "not in the bundled sample" in fetched.failures["TSLA"]


def test_sample_bars_are_split_adjusted_with_actions_recorded(sample_bars):
    msft = sample_bars[sample_bars["ticker"] == "MSFT"].set_index("date")
    assert msft.loc["2003-02-18", "split_ratio"] == 2.0
    ratio = msft.loc["2003-02-18", "close"] / msft.loc["2003-02-14", "close"]
    assert 0.9 < ratio < 1.1
    assert msft["dividends"].gt(0).sum() > 30
    assert msft.loc["2004-11-15", "dividends"] == pytest.approx(3.0, abs=0.1)  # the special dividend


def shared_layout_parquet(path, sample_bars) -> None:
    """A parquet file in the layout of the workplace's S&P 500 files (../shared/data/README.md):
    string tickers, naive dates, an all-null adj_close and a nullable integer volume."""
    bars = sample_bars[sample_bars["date"].between("2012-06-01", "2013-06-30")]
    table = pd.DataFrame(
        {
            "ticker": bars["ticker"].astype("string"),
            "date": bars["date"].astype("datetime64[ns]"),
            **{column: bars[column].astype("float64") for column in ("open", "high", "low", "close")},
            "adj_close": np.nan,
            "volume": bars["volume"].round().astype("Int64"),
        }
    )
    table.to_parquet(path, index=False)


def test_file_source_reads_the_shared_parquet_layout(tmp_path, sample_bars):
    from stockcast.ingest.sources import FileSource

    path = tmp_path / "sp500.parquet"
    shared_layout_parquet(path, sample_bars)
    fetched = FileSource(str(path)).fetch(["IBM", "MSFT", "NOPE"], date(2013, 1, 1), date(2013, 3, 28))
    assert set(fetched.bars["ticker"]) == {"IBM", "MSFT"}
    assert "NOPE" in fetched.failures
    assert fetched.bars["date"].min() >= pd.Timestamp("2013-01-01")
    assert fetched.bars["date"].max() <= pd.Timestamp("2013-03-28")
    ibm = fetched.bars[fetched.bars["ticker"] == "IBM"].set_index("date")
    expected = sample_bars[sample_bars["ticker"] == "IBM"].set_index("date")
    assert np.allclose(ibm["close"], expected.loc[ibm.index, "close"])
    assert set(fetched.bars["source"]) == {"file"}


def test_file_source_reads_csv(tmp_path, make_bars):
    from stockcast.ingest.sources import FileSource

    path = tmp_path / "bars.csv"
    make_bars(("AAA",), days=10).drop(columns=["source"]).to_csv(path, index=False)
    fetched = FileSource(str(path)).fetch(["AAA"], date(2015, 1, 1), date(2016, 1, 1))
    assert len(fetched.bars) == 10 and set(fetched.bars["source"]) == {"file"}


@pytest.mark.fault(
    "Prices: a file source that does not exist",
    "Fails with `... not found` (SourceUnavailableError, which the CLI reports in one line)",
)
def test_missing_file_is_a_clear_error(tmp_path):
    from stockcast.ingest.sources import FileSource

    with pytest.raises(SourceUnavailableError, match="not found"):
        FileSource(str(tmp_path / "nope.parquet")).fetch(["A"], date(2020, 1, 1), date(2020, 2, 1))
