"""The relational store: migrations, idempotent upserts, forecasts logged once per id."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import inspect

from stockcast.store.database import ForecastRow, Logged, Store, StoreUnavailableError


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same suite on each backend the store supports."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
    else:
        url = f"sqlite:///{tmp_path / 'db' / 'store.db'}"
    store = Store(url)
    store.upgrade()
    yield store
    store.dispose()


def test_migrations_create_the_tables_and_can_run_again(store):
    store.upgrade()
    tables = set(inspect(store.engine).get_table_names())
    assert {"prices", "forecasts", "alembic_version"} <= tables


def test_overlapping_upserts_add_no_duplicates_and_keep_the_newest_values(store, make_bars):
    bars = make_bars(("AAA",), days=50)
    store.upsert_prices(bars.iloc[:30])
    revised = bars.iloc[20:].copy()
    revised.loc[revised.index[0], "close"] = revised["close"].iloc[0] * 1.01
    revised.loc[revised.index[0], "high"] = revised[["high", "close"]].iloc[0].max()
    store.upsert_prices(revised)
    stored = store.load_prices(["AAA"])
    assert len(stored) == 50
    assert stored.loc[20, "close"] == pytest.approx(revised["close"].iloc[0])
    first, last, count = store.price_ranges()["AAA"]
    assert (first, last, count) == (bars["date"].iloc[0].date(), bars["date"].iloc[-1].date(), 50)


def test_prices_round_trip_with_types(store, make_bars):
    bars = make_bars(("AAA", "BBB"), days=10)
    store.upsert_prices(bars)
    loaded = store.load_prices(start=date(2015, 1, 5), end=date(2015, 1, 8))
    assert set(loaded["ticker"]) == {"AAA", "BBB"}
    assert pd.api.types.is_datetime64_any_dtype(loaded["date"])
    assert loaded["close"].dtype == "float64"


def _forecast(request_id: str) -> dict:
    return {
        "request_id": request_id,
        "ticker": "AAA",
        "as_of": date(2024, 1, 2),
        "target_date": date(2024, 1, 3),
        "predicted_close": 10.0,
        "lower": 9.0,
        "upper": 11.0,
        "level": 0.9,
        "model_name": "m",
        "model_version": "1",
        "model_kind": "naive",
        "origin": "batch",
        "features": {"x": 1.0},
        "created_at": None,
    }


def _served(request_id: str, **changes) -> Logged:
    record = {**_forecast(request_id), **changes}
    return Logged(ForecastRow(record), request_id, "api", datetime(2024, 1, 2, 15, 30, 1, 250000, tzinfo=UTC))


def test_the_api_append_stores_what_log_forecasts_stores(store):
    """The forecast log's fast path (one multi-row INSERT of converted values) keeps the same
    row as the general one, reads back the same, and a request id stored already is kept."""
    when = datetime(2024, 1, 2, 15, 30, 1, 250000, tzinfo=UTC)
    store.log_forecasts([{**_forecast("general"), "origin": "api", "created_at": when, "horizon": 5}])
    shared = ForecastRow({**_forecast("-"), "horizon": 5})
    store.append_forecasts([Logged(shared, f"fast{n}", "api", when) for n in range(150)])  # 3 INSERTs
    store.append_forecasts([Logged(shared, "fast0", "what-if", when)])  # already there: kept
    rows = store.load_forecasts(ticker="AAA").set_index("request_id").drop(columns=["id"])
    assert len(rows) == 151
    general, fast = rows.loc["general"], rows.loc["fast0"]
    assert fast.to_dict() == general.to_dict()
    assert fast["origin"] == "api" and fast["horizon"] == 5 and fast["features"] == '{"x": 1.0}'


def test_forecasts_are_logged_once_per_request_id(store):
    assert store.log_forecasts([_forecast("a"), _forecast("b")]) == 2
    assert store.log_forecasts([_forecast("a")]) == 0
    logged = store.load_forecasts(ticker="AAA")
    assert len(logged) == 2
    assert logged["features"].iloc[0] == '{"x": 1.0}'


def test_unopenable_database_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailableError, match="cannot open the database"):
        Store(f"sqlite:///{blocker}/nested/store.db").upgrade()


def test_the_forecast_log_shares_commits_and_fails_only_the_bad_request(store, monkeypatch):
    import threading
    from concurrent.futures import wait

    from stockcast.serving.forecast_log import ForecastLog

    # A gate in front of the real write keeps the writer busy inside a commit, on any backend.
    gate = threading.Event()
    write = store.append_forecasts

    def slow_write(records):
        assert gate.wait(30)
        return write(records)

    monkeypatch.setattr(store, "append_forecasts", slow_write)
    writer = ForecastLog(lambda: store)
    try:
        # While a commit is under way, 400 requests arrive.
        futures = [writer.submit([_served(f"r{n}")]) for n in range(400)]
        assert not any(future.done() for future in futures)  # nothing answered before stored
        gate.set()
        wait(futures)
        assert all(future.exception() is None for future in futures)
        assert len(store.load_forecasts(ticker="AAA")) == 400
        assert writer.commits <= 2  # those waiting together went out in one transaction

        bad = _served("bad", ticker=None)  # violates NOT NULL
        gate.clear()  # keep the writer busy so the three requests queue together
        busy = writer.submit([_served("busy")])
        first = writer.submit([_served("good")])
        second = writer.submit([bad])
        third = writer.submit([_served("also-good")])
        gate.set()
        assert busy.result(10) is None and first.result(10) is None and third.result(10) is None
        with pytest.raises(Exception, match=r"(?i)not.null"):
            second.result(10)
        assert {"good", "also-good"} <= set(store.load_forecasts(ticker="AAA")["request_id"])
    finally:
        gate.set()
        writer.close()
    refused = writer.submit([_served("late")])
    with pytest.raises(RuntimeError, match="closed"):
        refused.result(1)


def test_migration_files_are_named_by_their_revision(store):
    """The start-up shortcut reads the head from file names; each must match its revision."""
    import re

    from stockcast.store.database import MIGRATIONS_DIR, head_revision

    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        declared = re.search(r'^revision = "([^"]+)"', path.read_text(), re.MULTILINE)
        assert declared and path.name.startswith(f"{declared.group(1)}_"), path.name
    assert store.schema_revision() == head_revision()


def test_decisions_and_forecasts_stored_before_the_gate_evidence_survive_its_migration(tmp_path):
    """A store at revision 0005 (RMSE-only decisions) keeps its rows through 0006, whose new
    columns stay empty for them, and 0006 can be undone."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from stockcast.store.database import MIGRATIONS_DIR

    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(
            text(
                "INSERT INTO promotions (decided_at, ticker, action, promoted, forced, challenger_version, "
                "challenger_spec, reason) VALUES ('2024-01-02 00:00:00', 'AAA', 'train', 1, 0, '1', "
                "'drift()', 'drift() RMSE 9.1366 beats naive 9.1551')"
            )
        )
    store.upgrade()
    [old] = store.load_decisions("AAA").to_dict(orient="records")
    assert (
        old["reason"].startswith("drift() RMSE") and old["p_value_vs_naive"] is None and old["tests"] is None
    )
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
        assert "p_value_vs_naive" not in {
            column["name"] for column in inspect(connection).get_columns("promotions")
        }
    store.dispose()


def test_the_horizon_migration_keeps_every_row_one_session_ahead_and_can_be_undone(store):
    """On SQLite and PostgreSQL: forecasts, decisions and verdicts stored before horizons are
    one session ahead after 0009; two horizons' verdicts of one day are two rows; a downgrade
    keeps the one-session rows, and upgrading again works (the key's name is free again)."""
    from alembic import command
    from alembic.config import Config

    from stockcast.store.database import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def migrate(step, revision: str) -> None:
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    migrate(command.downgrade, "0008")
    verdict = {
        "ticker": "AAA",
        "as_of": date(2024, 6, 3),
        "evaluated": 0,
        "days_above": 0,
        "status": "ok",
        "computed_at": datetime(2024, 6, 3, 22, tzinfo=UTC),
    }
    import sqlalchemy as sa

    # The columns revision 0008 had, typed: SQLAlchemy writes the instant as the store does (not
    # the driver's own adapter, which another library in the test process may have replaced).
    before = sa.table(
        "monitoring",
        sa.column("ticker", sa.String),
        sa.column("as_of", sa.Date),
        sa.column("evaluated", sa.Integer),
        sa.column("days_above", sa.Integer),
        sa.column("status", sa.String),
        sa.column("computed_at", sa.DateTime(timezone=True)),
    )
    with store.engine.begin() as connection:
        connection.execute(before.insert(), [verdict])
    migrate(command.upgrade, "head")
    [kept] = store.load_monitoring("AAA").to_dict(orient="records")
    assert kept["horizon"] == 1 and kept["status"] == "ok"
    store.upsert_monitoring([{**verdict, "horizon": 5, "status": "watch"}])
    assert sorted(store.load_monitoring("AAA", horizon=None)["horizon"]) == [1, 5]
    migrate(command.downgrade, "0008")
    assert "horizon" not in {column["name"] for column in inspect(store.engine).get_columns("monitoring")}
    migrate(command.upgrade, "head")
    assert store.load_monitoring("AAA", horizon=None)["horizon"].tolist() == [1]


def test_the_api_checkpoints_sqlite_behind_its_commits(tmp_path):
    """With checkpoints behind (the API), a thread copies the write-ahead log into the database
    file while commits go on; every commit stays readable, and a stop writes what is left."""
    import sqlite3
    import time

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    store.checkpoint_behind()
    store.checkpoint_behind()  # once is enough
    checkpointer = store._checkpointer
    assert checkpointer is not None
    when = datetime(2024, 1, 2, tzinfo=UTC)
    shared = ForecastRow(_forecast("-"))
    for batch in range(40):
        store.append_forecasts([Logged(shared, f"c{batch}-{n}", "api", when) for n in range(50)])
    seen = checkpointer.checkpoints
    deadline = time.monotonic() + 30
    while checkpointer.checkpoints < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # polled: the thread checkpoints every 50 ms
    assert checkpointer.checkpoints >= seen + 2
    assert store.count_forecasts() == 2000
    store.dispose()
    assert not checkpointer._thread.is_alive()
    # Everything the log held is in the database file: opened alone, it holds every row.
    with sqlite3.connect(tmp_path / "store.db") as connection:
        assert connection.execute("SELECT count(*) FROM forecasts").fetchone()[0] == 2000
    Store("sqlite://").checkpoint_behind()  # in memory: nothing to checkpoint, no thread


def test_checkpoints_behind_are_sqlite_only(store):
    store.checkpoint_behind()
    assert (store._checkpointer is not None) == (store.engine.dialect.name == "sqlite")
    store.dispose()


def _score(store: Store, request_ids: set[str], actual: float) -> None:
    frame = store.open_forecasts()
    store.record_actuals(
        [
            {
                "id": row.id,
                "actual_close": actual,
                "error": actual - row.predicted_close,
                "actual_date": row.target_date,
                "abs_error": abs(actual - row.predicted_close),
                "pct_error": None,
                "covered": True,
                "naive_error": None,
                "adjustment": 1.0,
                "evaluated_at": datetime(2024, 3, 1, tzinfo=UTC),
            }
            for row in frame.itertuples()
            if row.request_id in request_ids
        ]
    )


def test_the_history_reads_scored_and_awaiting_forecasts_as_one_ordered_log(store):
    """Scored rows and rows awaiting their actual are read through different indexes (0010) and
    merged: by target date, ticker and id, with filters, pages and limits as one table's."""
    rows = []
    for n in range(24):
        ticker = ("AAA", "BBB")[n % 2]
        target = date(2024, 1, 3 + n % 6)
        rows.append({**_forecast(f"r{n}"), "ticker": ticker, "target_date": target, "horizon": 1 + n % 3})
    store.log_forecasts(rows)
    _score(store, {f"r{n}" for n in range(24) if n % 4 in (0, 3)}, 10.5)

    everything = store.load_forecasts()
    assert len(everything) == 24 and everything["actual_close"].notna().sum() == 12
    order = everything[["target_date", "ticker", "id"]].to_records(index=False).tolist()
    assert order == sorted(order)
    pages = [store.load_forecasts(limit=5, offset=offset) for offset in range(0, 24, 5)]
    assert pd.concat(pages)["request_id"].tolist() == everything["request_id"].tolist()

    some = store.load_forecasts(ticker="BBB", start=date(2024, 1, 4), end=date(2024, 1, 7), horizon=2)
    expected = everything[
        (everything["ticker"] == "BBB")
        & (everything["horizon"] == 2)
        & everything["target_date"].between(date(2024, 1, 4), date(2024, 1, 7))
    ]
    assert not some.empty and some["request_id"].tolist() == expected["request_id"].tolist()
    assert set(store.open_forecasts()["request_id"]) == set(
        everything.loc[everything["actual_close"].isna(), "request_id"]
    )
    assert store.evaluated_forecasts("AAA")["actual_close"].notna().all()


def test_the_forecast_log_is_read_through_its_indexes_and_its_migration_can_be_undone(tmp_path):
    """Every query of the forecast log reads through an index, none scans the table; a served
    row enters only indexes that grow at their end (by id), and scoring moves it into the
    ticker-led ones. Downgrading to 0009 brings the old indexes back with the rows intact."""
    import sqlite3

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import event

    from stockcast.store.database import MIGRATIONS_DIR

    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.log_forecasts([{**_forecast(f"r{n}"), "ticker": ("AAA", "BBB")[n % 2]} for n in range(6)])
    _score(store, {"r0", "r1"}, 10.5)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2:4]))
    store.load_forecasts(ticker="AAA", start=date(2024, 1, 1), end=date(2024, 2, 1), horizon=1, limit=10)
    store.load_forecasts(ticker="AAA")
    store.open_forecasts(["AAA", "BBB"])
    store.open_forecasts()
    store.evaluated_forecasts("AAA")
    store.evaluated_forecasts_of(["AAA", "BBB"])
    connection = sqlite3.connect(path)
    for statement, parameters in statements:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        reads = [step for step in plan if "forecasts" in step]
        assert reads and all("USING INDEX" in step for step in reads), (statement, plan)

    def indexes() -> dict[str, str]:
        found = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'forecasts'"
        )
        return {name: sql for name, sql in found if sql is not None}

    entered_by_new_rows = {name: sql for name, sql in indexes().items() if "IS NOT NULL" not in sql}
    assert list(entered_by_new_rows) == ["ix_forecasts_awaiting"]
    assert "(id) WHERE actual_close IS NULL" in entered_by_new_rows["ix_forecasts_awaiting"]

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as migrating:
        config.attributes["connection"] = migrating
        command.downgrade(config, "0009")
    assert set(indexes()) == {
        "ix_forecasts_ticker_target",
        "ix_forecasts_ticker_horizon_asof",
        "ix_forecasts_open",
    }
    store.upgrade()
    assert set(indexes()) == {"ix_forecasts_awaiting", "ix_forecasts_scored", "ix_forecasts_scored_target"}
    assert store.count_forecasts() == 6 and len(store.open_forecasts()) == 4
    connection.close()
    store.dispose()
