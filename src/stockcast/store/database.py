"""The relational store: prices and logged forecasts, through SQLAlchemy on any backend.

This is the only module that speaks SQL. SQLite by default, PostgreSQL in production; the
schema comes from Alembic migrations in both cases.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import Connection, Engine, and_, create_engine, event, func, select, union_all
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from stockcast.failpoints import failpoint
from stockcast.ingest.bars import BAR_COLUMNS
from stockcast.store.schema import forecasts, jobs, monitoring, prices, promotions

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FORECAST_COLUMNS = [column.name for column in forecasts.columns]
# What a forecast has when it is logged (the others wait for its actual): what it says, then what
# each request that serves it gives it.
FORECAST_CONTENT = (
    "ticker",
    "as_of",
    "target_date",
    "predicted_close",
    "last_close",
    "lower",
    "upper",
    "level",
    "model_name",
    "model_version",
    "model_kind",
    "features",
    "intervals",
    "horizon",
)
PER_REQUEST_COLUMNS = ("request_id", "origin", "created_at")
LOGGED_COLUMNS = FORECAST_CONTENT + PER_REQUEST_COLUMNS
APPEND_CHUNK = 64  # rows per INSERT statement: 17 x 64 parameters, well inside every database's limit
PROMOTION_COLUMNS = [column.name for column in promotions.columns]
MONITORING_COLUMNS = [column.name for column in monitoring.columns]


class ForecastRow:
    """A forecast as the forecast log keeps it, but for the request id, origin and time each
    serving of it adds: made once per forecast that is served many times, and converted for
    the database once (``values``)."""

    __slots__ = ("_values", "record")

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self._values: tuple[str, tuple[Any, ...]] | None = None  # (dialect, converted values)

    def values(self, store: Store) -> tuple[Any, ...]:
        dialect = store.engine.dialect.name
        cached = self._values
        if cached is None or cached[0] != dialect:
            row = _forecast_row(self.record)
            converted = tuple(
                convert(row[name]) if convert else row[name]
                for name, convert in zip(FORECAST_CONTENT, store.converters(FORECAST_CONTENT), strict=True)
            )
            cached = self._values = (dialect, converted)
        return cached[1]


class Logged(NamedTuple):
    """One forecast served: what it says, and the request id, origin and time of this serving."""

    row: ForecastRow
    request_id: str
    origin: str
    created_at: datetime


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached or opened."""


class SchemaOutdatedError(StoreUnavailableError):
    """The database's schema is behind the code and migrating on start is turned off."""


def _make_engine(url: str, timeout_seconds: float) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in {"", ":memory:"}:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreUnavailableError(f"cannot open the database: {error}") from error
        # ``timeout``: how long a statement waits for another process's lock on the file.
        engine = create_engine(url, connect_args={"timeout": timeout_seconds})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets the API read while a batch job writes. With WAL, synchronous=NORMAL keeps
            # every commit through a crash of the process (not of the machine's power) and
            # spares an fsync per forecast logged.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # pre-ping: a pooled connection the server dropped (a restart) is replaced at checkout
    # instead of failing the next statement.
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "postgres")):
        options["connect_args"] = {"connect_timeout": max(1, min(10, round(timeout_seconds)))}
    return create_engine(url, **options)


def _upsert(
    engine_dialect: str, table: Any, rows: list[dict[str, Any]], keys: Sequence[str], update: bool
) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    inserts = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    if engine_dialect not in inserts:
        raise StoreUnavailableError(f"unsupported database dialect {engine_dialect!r}")
    statement: Any = inserts[engine_dialect](table)
    if update:
        changing = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
        return statement.on_conflict_do_update(index_elements=list(keys), set_=changing)
    return statement.on_conflict_do_nothing(index_elements=list(keys))


def _forecast_row(record: dict[str, Any]) -> dict[str, Any]:
    """A forecast record as the forecasts table stores it (every column but the id)."""
    row = {key: record.get(key) for key in FORECAST_COLUMNS if key != "id"}
    if isinstance(row["features"], dict):
        row["features"] = json.dumps(row["features"], sort_keys=True)
    row["created_at"] = row["created_at"] or datetime.now(UTC)
    row["horizon"] = row["horizon"] or 1
    return row


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# What a server says while it cannot take connections for now (down, starting, restarting);
# a wrong password or a missing database is not worth waiting for.
TRANSIENT_MARKERS = (
    "connection refused",
    "could not connect",
    "starting up",
    "shutting down",
    "terminating connection",
    "server closed the connection",
    "timeout expired",
)


def _transient(error: DBAPIError) -> bool:
    reason = str(getattr(error, "orig", None) or error).lower()
    return any(marker in reason for marker in TRANSIENT_MARKERS)


def head_revision() -> str:
    """The newest migration's id: migration files are named ``<revision>_<slug>.py``."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


class Store:
    """``timeout_seconds``: how long an operation waits for a locked SQLite file, or for a
    database server that refuses connections (a restart), before failing with
    ``StoreUnavailableError``. A failed write leaves nothing of itself behind: every write is
    one transaction."""

    def __init__(self, url: str, timeout_seconds: float = 30.0):
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.engine = _make_engine(url, timeout_seconds)
        self._is_sqlite = self.engine.dialect.name == "sqlite"
        # SQLite takes one writer at a time and makes the others sleep and retry; threads of
        # one process (the API under load) queue here instead, in order and without sleeping.
        self._write_lock = threading.Lock() if self._is_sqlite else None
        self._append_sqls: dict[int, str] = {}
        self._checkpointer: Any = None

    def checkpoint_behind(self) -> None:
        """Copy SQLite's write-ahead log into the database file from a thread of its own as well
        (see ``stockcast.store.checkpoints``): for a process that commits many times a second
        while requests wait for the commits, the API. Nothing to do on a database server."""
        database = self.engine.url.database
        if not self._is_sqlite or self._checkpointer is not None or database in {None, "", ":memory:"}:
            return
        from stockcast.store.checkpoints import WalCheckpointer

        self._checkpointer = WalCheckpointer(str(database))
        self._checkpointer.start()

    def _connect(self, retry: bool = True) -> Connection:
        """A connection, retried with backoff while a database server refuses them (it may be
        restarting), for up to ``timeout_seconds``."""
        deadline = time.monotonic() + self.timeout_seconds
        pause = 0.1
        while True:
            try:
                return self.engine.connect()
            except OperationalError as error:
                waiting = retry and not self._is_sqlite and _transient(error)
                if not waiting or time.monotonic() + pause > deadline:
                    raise self._unavailable(error, tried_for=waiting) from error
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _unavailable(
        self, error: DBAPIError, tried_for: bool = False, writing: bool = False
    ) -> StoreUnavailableError:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        if self._is_sqlite and "locked" in reason:
            message = (
                f"the database file is locked by another process (waited {self.timeout_seconds:g} s, "
                "STOCKCAST_DATABASE_TIMEOUT_SECONDS)"
            )
        elif tried_for:
            message = f"database unreachable (tried for {self.timeout_seconds:g} s): {reason}"
        else:
            message = f"database unreachable: {reason}"
        if writing:
            message += "; nothing of this write was stored"
        return StoreUnavailableError(message)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        connection = self._connect()
        try:
            with connection:
                yield connection
        except (OperationalError, InterfaceError) as error:
            raise self._unavailable(error) from error

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One transaction: committed whole when the block ends, rolled back on any error."""
        with self._write_lock or nullcontext():
            connection = self._connect()
            try:
                with connection, connection.begin():
                    yield connection
            except (OperationalError, InterfaceError) as error:
                raise self._unavailable(error, writing=True) from error

    # -- schema -----------------------------------------------------------------------------
    def schema_revision(self) -> str | None:
        """The migration the database is at (None before the first)."""
        from sqlalchemy import text

        with self._reading() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except DBAPIError:  # no such table yet
                return None

    def check_schema(self) -> None:
        """Fail clearly when the schema is not the one this code was written for."""
        found, wanted = self.schema_revision(), head_revision()
        if found != wanted:
            self.ping()  # an unreachable database says so rather than "outdated"
            raise SchemaOutdatedError(
                f"the database schema is at revision {found or 'none (empty database)'}, this "
                f"version of stockcast needs {wanted}: run `stockcast db upgrade` "
                "(or set STOCKCAST_MIGRATE_ON_START=true)"
            )

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the schema to the newest migration; safe to run on every start. A database
        already at the head is recognised with one query, without loading Alembic. Returns
        the revisions before and after."""
        before = self.schema_revision()
        if before == head_revision():
            return before, before
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._writing() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, head_revision()

    def ping(self) -> None:
        """One round trip, no waiting: readiness probes call this."""
        try:
            with self._connect(retry=False) as connection:
                connection.execute(select(1))
        except (OperationalError, InterfaceError) as error:
            raise self._unavailable(error) from error

    # -- prices -----------------------------------------------------------------------------
    def upsert_prices(self, bars: pd.DataFrame, ingested_at: datetime | None = None) -> int:
        """Insert or update bars by (ticker, date) in one transaction; returns rows written."""
        if bars.empty:
            return 0
        stamp = ingested_at or datetime.now(UTC)
        frame = bars[BAR_COLUMNS].copy()
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
        frame["ingested_at"] = stamp
        rows = [
            {key: _none_if_nan(value) for key, value in row.items()}
            for row in frame.to_dict(orient="records")
        ]
        statement = _upsert(self.engine.dialect.name, prices, rows, ["ticker", "date"], update=True)
        with self._writing() as connection:
            connection.execute(statement, rows)
            failpoint("store.prices.before_commit")
        return len(rows)

    def load_prices(
        self,
        tickers: Iterable[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> pd.DataFrame:
        query = select(*[prices.c[column] for column in BAR_COLUMNS])
        if tickers is not None:
            query = query.where(prices.c.ticker.in_(list(tickers)))
        if start is not None:
            query = query.where(prices.c.date >= start)
        if end is not None:
            query = query.where(prices.c.date <= end)
        query = query.order_by(prices.c.ticker, prices.c.date)
        with self._reading() as connection:
            frame = pd.DataFrame(connection.execute(query).fetchall(), columns=BAR_COLUMNS)
        frame["date"] = pd.to_datetime(frame["date"])
        for column in BAR_COLUMNS[2:-1]:
            frame[column] = frame[column].astype("float64")
        return frame

    def price_ranges(self) -> dict[str, tuple[date, date, int]]:
        """First date, last date and row count per stored ticker."""
        query = select(
            prices.c.ticker, func.min(prices.c.date), func.max(prices.c.date), func.count()
        ).group_by(prices.c.ticker)
        with self._reading() as connection:
            return {row[0]: (row[1], row[2], row[3]) for row in connection.execute(query)}

    def latest_price_dates(self, tickers: Sequence[str]) -> dict[str, date]:
        """The newest stored bar's date of each ticker that has bars, in one query."""
        query = (
            select(prices.c.ticker, func.max(prices.c.date))
            .where(prices.c.ticker.in_(list(tickers)))
            .group_by(prices.c.ticker)
        )
        with self._reading() as connection:
            return {
                ticker: newest for ticker, newest in connection.execute(query).all() if newest is not None
            }

    def count_prices(self) -> int:
        with self._reading() as connection:
            return int(connection.execute(select(func.count()).select_from(prices)).scalar_one())

    # -- forecasts --------------------------------------------------------------------------
    def log_forecasts(self, records: Sequence[dict[str, Any]]) -> int:
        """Store forecasts; a request id already stored is left as it was. Returns new rows."""
        if not records:
            return 0
        rows = [_forecast_row(record) for record in records]
        statement = _upsert(self.engine.dialect.name, forecasts, rows, ["request_id"], update=False)
        # RETURNING yields only the rows inserted (a conflicting request id returns nothing),
        # where a count before and after would scan the whole table twice per call.
        with self._writing() as connection:
            return len(connection.execute(statement.returning(forecasts.c.request_id), rows).all())

    def append_forecasts(self, entries: Sequence[Logged]) -> None:
        """``log_forecasts`` for the API's forecast log, where nothing waits for a count: the
        same rows (a request id already stored is left as it was), in one transaction.

        The rows go in as one multi-row INSERT per ``APPEND_CHUNK`` rows, with only the columns a
        new forecast has, its text written once per number of rows and handed to the driver as
        is. The driver lets go of Python's global lock for each statement it runs: one
        statement for the lot, not one per row, so the thread answering requests is not held
        up by a lock passed back and forth a hundred times a commit. A forecast served again and
        again (``ForecastRow``) has its values converted for the database once."""
        if not entries:
            return
        request_id, origin, created_at = self._append_converters
        values: list[Any] = []
        stamps: dict[int, Any] = {}  # the entries of one request share their time
        for row, request, source, created in entries:
            stamp = stamps.get(id(created))
            if stamp is None:
                stamp = stamps[id(created)] = created_at(created) if created_at else created
            values += row.values(self)
            values += (
                request_id(request) if request_id else request,
                origin(source) if origin else source,
                stamp,
            )
        width = len(LOGGED_COLUMNS)
        with self._writing() as connection:
            for first in range(0, len(entries), APPEND_CHUNK):
                count = min(APPEND_CHUNK, len(entries) - first)
                chunk = values[first * width : (first + count) * width]
                connection.exec_driver_sql(self._append_sql(count), tuple(chunk))

    def converters(self, columns: Sequence[str]) -> list[Any]:
        """Each forecast column's conversion of a Python value to what this database's driver
        takes (None: as it is), as SQLAlchemy itself converts it (dates to ISO text on SQLite)."""
        dialect = self.engine.dialect
        return [forecasts.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]

    @cached_property
    def _append_converters(self) -> list[Any]:
        return self.converters(PER_REQUEST_COLUMNS)

    def _append_sql(self, rows: int) -> str:
        cached = self._append_sqls.get(rows)
        if cached is None:
            dialect = self.engine.dialect
            if dialect.paramstyle not in {"qmark", "format", "pyformat"}:
                raise StoreUnavailableError(f"unsupported driver parameter style {dialect.paramstyle!r}")
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            quote = dialect.identifier_preparer.quote
            row = "(" + ", ".join([mark] * len(LOGGED_COLUMNS)) + ")"
            # Made of the schema's own names and parameter marks only: every value is a parameter.
            cached = self._append_sqls[rows] = (
                f"INSERT INTO {quote(forecasts.name)} ({', '.join(quote(name) for name in LOGGED_COLUMNS)}) "  # noqa: S608  # nosec B608
                f"VALUES {', '.join([row] * rows)} ON CONFLICT ({quote('request_id')}) DO NOTHING"
            )
        return cached

    def count_forecasts(self) -> int:
        with self._reading() as connection:
            return int(connection.execute(select(func.count()).select_from(forecasts)).scalar_one())

    def load_forecasts(
        self,
        ticker: str | None = None,
        start: date | None = None,
        end: date | None = None,
        limit: int | None = None,
        offset: int = 0,
        horizon: int | None = None,
    ) -> pd.DataFrame:
        """Logged forecasts by target date (of every horizon unless one is given). The scored
        rows and those awaiting their actual are read apart, each through its own index (see
        migration 0010), and merged in order."""
        conditions = []
        if ticker is not None:
            conditions.append(forecasts.c.ticker == ticker)
        if horizon is not None:
            conditions.append(forecasts.c.horizon == horizon)
        if start is not None:
            conditions.append(forecasts.c.target_date >= start)
        if end is not None:
            conditions.append(forecasts.c.target_date <= end)
        scored, awaiting = (
            select(forecasts).where(and_(*conditions, state))
            for state in (forecasts.c.actual_close.is_not(None), forecasts.c.actual_close.is_(None))
        )
        both = union_all(scored, awaiting)
        order = both.selected_columns
        query = both.order_by(order.target_date, order.ticker, order.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as connection:
            return pd.DataFrame(connection.execute(query).fetchall(), columns=FORECAST_COLUMNS)

    def open_forecasts(self, tickers: Sequence[str] | None = None) -> pd.DataFrame:
        """Forecasts still waiting for their actual (what-if forecasts are never scored)."""
        query = select(forecasts).where(forecasts.c.actual_close.is_(None), forecasts.c.origin != "what-if")
        if tickers is not None:
            query = query.where(forecasts.c.ticker.in_(list(tickers)))
        with self._reading() as connection:
            return pd.DataFrame(
                connection.execute(query.order_by(forecasts.c.id)).fetchall(), columns=FORECAST_COLUMNS
            )

    def record_actuals(self, outcomes: Sequence[dict[str, Any]]) -> int:
        """Write actuals onto their forecasts (by ``id``), in one transaction; a forecast that
        already has its actual keeps it, so a rerun changes nothing. Returns rows filled."""
        if not outcomes:
            return 0
        from sqlalchemy import bindparam, update

        fields = [
            "actual_close",
            "error",
            "actual_date",
            "abs_error",
            "pct_error",
            "covered",
            "naive_error",
            "adjustment",
            "evaluated_at",
        ]
        statement = (
            update(forecasts)
            .where(forecasts.c.id == bindparam("forecast_id"), forecasts.c.actual_close.is_(None))
            .values({name: bindparam(f"new_{name}") for name in fields})
        )
        rows = [
            {"forecast_id": int(outcome["id"]), **{f"new_{name}": outcome[name] for name in fields}}
            for outcome in outcomes
        ]
        with self._writing() as connection:
            result = connection.execute(statement, rows)
        return int(result.rowcount)

    def evaluated_forecasts(self, ticker: str) -> pd.DataFrame:
        """Scored forecasts of a ticker, oldest first."""
        query = (
            select(forecasts)
            .where(forecasts.c.ticker == ticker, forecasts.c.actual_close.is_not(None))
            .order_by(forecasts.c.as_of, forecasts.c.id)
        )
        with self._reading() as connection:
            return pd.DataFrame(connection.execute(query).fetchall(), columns=FORECAST_COLUMNS)

    def evaluated_forecasts_of(self, tickers: Sequence[str]) -> pd.DataFrame:
        """Scored forecasts of many tickers in one query, by ticker, each oldest first; without
        the feature values each forecast was made from (most of a row's bytes)."""
        columns = [column for column in FORECAST_COLUMNS if column != "features"]
        query = (
            select(*[forecasts.c[column] for column in columns])
            .where(forecasts.c.ticker.in_(list(tickers)), forecasts.c.actual_close.is_not(None))
            .order_by(forecasts.c.ticker, forecasts.c.as_of, forecasts.c.id)
        )
        with self._reading() as connection:
            return pd.DataFrame(connection.execute(query).fetchall(), columns=columns)

    def last_forecast_times(self) -> dict[str, datetime]:
        """When each ticker's newest forecast was logged."""
        query = select(forecasts.c.ticker, func.max(forecasts.c.created_at)).group_by(forecasts.c.ticker)
        with self._reading() as connection:
            return {str(ticker): stamp for ticker, stamp in connection.execute(query).all()}

    # -- monitoring -------------------------------------------------------------------------
    def upsert_monitoring(self, rows: Sequence[dict[str, Any]]) -> None:
        """One row per ticker, horizon and day; a rerun of the same day replaces it."""
        if not rows:
            return
        clean = [{key: row.get(key) for key in MONITORING_COLUMNS} for row in rows]
        for row in clean:
            row["horizon"] = row["horizon"] or 1
        keys = ["ticker", "horizon", "as_of"]
        statement = _upsert(self.engine.dialect.name, monitoring, clean, keys, update=True)
        with self._writing() as connection:
            connection.execute(statement, clean)

    def load_monitoring(
        self, ticker: str | None = None, latest_only: bool = False, horizon: int | None = 1
    ) -> pd.DataFrame:
        """Verdicts by ticker and day, at one horizon (the one-session one by default; every
        horizon when None, ordered by ticker, horizon and day). ``latest_only``: the newest of
        each ticker and horizon."""
        query = select(monitoring).order_by(monitoring.c.ticker, monitoring.c.horizon, monitoring.c.as_of)
        if ticker is not None:
            query = query.where(monitoring.c.ticker == ticker)
        if horizon is not None:
            query = query.where(monitoring.c.horizon == horizon)
        with self._reading() as connection:
            frame = pd.DataFrame(connection.execute(query).fetchall(), columns=MONITORING_COLUMNS)
        if latest_only and not frame.empty:
            frame = frame.groupby(["ticker", "horizon"], as_index=False).tail(1).reset_index(drop=True)
        return frame

    # -- promotion history -------------------------------------------------------------------
    def record_decision(self, decision: dict[str, Any]) -> None:
        row = {key: decision.get(key) for key in PROMOTION_COLUMNS if key != "id"}
        row["decided_at"] = row["decided_at"] or datetime.now(UTC)
        row["forced"] = bool(row["forced"])
        row["horizon"] = row["horizon"] or 1
        with self._writing() as connection:
            connection.execute(promotions.insert(), [row])

    def load_decisions(self, ticker: str | None = None, horizon: int | None = 1) -> pd.DataFrame:
        """The gate's decisions, oldest first, about one horizon's champions (the one-session
        one by default; every horizon when None)."""
        query = select(promotions).order_by(promotions.c.decided_at, promotions.c.id)
        if ticker is not None:
            query = query.where(promotions.c.ticker == ticker)
        if horizon is not None:
            query = query.where(promotions.c.horizon == horizon)
        with self._reading() as connection:
            return pd.DataFrame(connection.execute(query).fetchall(), columns=PROMOTION_COLUMNS)

    # -- changes, for copies elsewhere (analytics) ------------------------------------------
    def forecasts_changed_since(self, since: datetime | None) -> pd.DataFrame:
        """Forecasts logged or scored at or after ``since`` (all when None), without their
        logged features."""
        columns = [column for column in forecasts.columns if column.name not in ("features", "intervals")]
        query = select(*columns).order_by(forecasts.c.id)
        if since is not None:
            query = query.where((forecasts.c.created_at >= since) | (forecasts.c.evaluated_at >= since))
        with self._reading() as connection:
            return pd.DataFrame(connection.execute(query).fetchall(), columns=[c.name for c in columns])

    def monitoring_changed_since(self, since: datetime | None) -> pd.DataFrame:
        """Monitoring rows computed at or after ``since`` (all when None)."""
        query = select(monitoring).order_by(monitoring.c.ticker, monitoring.c.horizon, monitoring.c.as_of)
        if since is not None:
            query = query.where(monitoring.c.computed_at >= since)
        with self._reading() as connection:
            return pd.DataFrame(
                connection.execute(query).fetchall(), columns=[c.name for c in monitoring.columns]
            )

    # -- jobs -------------------------------------------------------------------------------
    # A job's row is its record, whoever runs it. Every change below is a compare-and-set on the
    # row's state, so two processes (two API replicas, two workers, a worker and a redelivered
    # message) never both take a job, and a process that lost its job cannot finish it.
    def create_job(
        self, job_id: str, kind: str, tickers: list[str], tune_trials: int = 0, owner: str | None = None
    ) -> None:
        """A queued job: ``owner`` is the process that will run it (the API's own threads), or
        None while it waits on a broker (Celery) for a worker."""
        with self._writing() as connection:
            now = self._lease_clock(connection)
            row = {
                "id": job_id,
                "kind": kind,
                "tickers": json.dumps(tickers),
                "status": "queued",
                "created_at": now,
                "owner": owner,
                "heartbeat_at": now if owner else None,
                "attempts": 0,
                "tune_trials": tune_trials,
            }
            connection.execute(jobs.insert(), [row])

    def update_job(self, job_id: str, **changes: Any) -> None:
        if "result" in changes and not isinstance(changes["result"], str | None):
            changes["result"] = json.dumps(changes["result"], default=str)
        with self._writing() as connection:
            connection.execute(jobs.update().where(jobs.c.id == job_id).values(**changes))

    def claim_job(
        self, job_id: str, owner: str, stale_seconds: float, max_attempts: int
    ) -> tuple[str, dict[str, Any] | None]:
        """Start running ``job_id`` as ``owner``. Returns one of:

        - ``("claimed", job)``: it is now running here (its attempts counted);
        - ``("busy", job)``: another live process holds it (its heartbeat is fresher than
          ``stale_seconds``): ask again later;
        - ``("done", job)``: it has finished, or it has now failed for having been started
          ``max_attempts`` times already;
        - ``("missing", None)``: no such job.
        """
        from datetime import timedelta

        while True:
            with self._writing() as connection:
                now = self._lease_clock(connection)
                row = connection.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
                if row is None:
                    return "missing", None
                if row["status"] in ("succeeded", "failed"):
                    return "done", _job_row(row)
                beat = _as_utc(row["heartbeat_at"]) if row["heartbeat_at"] is not None else None
                live = beat is not None and beat >= now - timedelta(seconds=stale_seconds)
                queued_here = row["status"] == "queued" and row["owner"] == owner
                if row["owner"] is not None and live and not queued_here:
                    return "busy", _job_row(row)  # a live process holds it (this one, if running)
                changes: dict[str, Any]
                if row["attempts"] >= max_attempts:
                    changes = _given_up(row, max_attempts, now)
                else:
                    changes = {
                        "status": "running",
                        "owner": owner,
                        "heartbeat_at": now,
                        "attempts": row["attempts"] + 1,
                        "started_at": None,  # set once it holds its tickers' leases
                    }
                if _compare_and_set(connection, row, changes):
                    return ("done" if changes["status"] == "failed" else "claimed"), _job_row(
                        {**row, **changes}
                    )
            # Another process changed the row between the read and the write: look again.

    def finish_job(
        self, job_id: str, owner: str, status: str, result: Any = None, error: str | None = None
    ) -> bool:
        """Record the outcome, if ``owner`` still runs the job; False when the job was taken
        back meanwhile (its heartbeat went stale and another process took it over)."""
        with self._writing() as connection:
            now = self._lease_clock(connection)
            updated = connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.owner == owner, jobs.c.status.in_(("queued", "running")))
                .values(
                    status=status,
                    finished_at=now,
                    heartbeat_at=None,
                    result=json.dumps(result, default=str) if result is not None else None,
                    error=error,
                )
            )
        return int(updated.rowcount) == 1

    def job_started(self, job_id: str, owner: str) -> bool:
        """The job holds its tickers' leases and starts training now; False when it was taken
        back meanwhile (then it must not train here)."""
        with self._writing() as connection:
            now = self._lease_clock(connection)
            updated = connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.owner == owner, jobs.c.status == "running")
                .values(started_at=now)
            )
        return int(updated.rowcount) == 1

    def beat_jobs(self, owner: str, job_ids: Sequence[str]) -> int:
        """The heartbeat of the unfinished jobs among ``job_ids`` that ``owner`` holds; how many.
        Only the jobs a process is running are beaten: a row it holds but no longer runs (an
        outcome it could not record) goes stale and is taken back."""
        if not job_ids:
            return 0
        with self._writing() as connection:
            now = self._lease_clock(connection)
            updated = connection.execute(
                jobs.update()
                .where(
                    jobs.c.owner == owner,
                    jobs.c.id.in_(list(job_ids)),
                    jobs.c.status.in_(("queued", "running")),
                )
                .values(heartbeat_at=now)
            )
        return int(updated.rowcount)

    def take_back_stale_jobs(
        self, stale_seconds: float, max_attempts: int, adopt_as: str | None = None
    ) -> list[dict[str, Any]]:
        """Unfinished jobs whose holder stopped beating for ``stale_seconds`` (its process died):
        each is queued again, owned by ``adopt_as`` (a process that runs it itself) or by nobody
        (the broker's next worker), or failed once it has been started ``max_attempts`` times.
        Returns the jobs queued again, for the caller to dispatch. A live holder's jobs are never
        touched: a fresh heartbeat keeps them out of the selection, and each change is a
        compare-and-set on the row read, so two processes never take back the same job."""
        from datetime import timedelta

        taken: list[dict[str, Any]] = []
        with self._reading() as connection:
            now = self._lease_clock(connection)
            cutoff = now - timedelta(seconds=stale_seconds)
            stale = (
                connection.execute(
                    select(jobs).where(
                        jobs.c.status.in_(("queued", "running")),
                        jobs.c.heartbeat_at.is_not(None),
                        jobs.c.heartbeat_at < cutoff,
                    )
                )
                .mappings()
                .all()
            )
        for row in stale:
            with self._writing() as connection:
                now = self._lease_clock(connection)
                since = f"{_as_utc(row['heartbeat_at']):%Y-%m-%d %H:%M:%S} UTC"
                changes: dict[str, Any]
                if row["attempts"] >= max_attempts:
                    changes = _given_up(row, max_attempts, now)
                else:
                    changes = {
                        "status": "queued",
                        "owner": adopt_as,
                        "heartbeat_at": now if adopt_as else None,
                        "error": (
                            f"queued again: {row['owner']} stopped its heartbeat at {since} "
                            f"(attempt {row['attempts']} of {max_attempts})"
                        ),
                    }
                if _compare_and_set(connection, row, changes) and changes["status"] == "queued":
                    taken.append(
                        {**_job_row({**row, **changes}), "previous_heartbeat_at": row["heartbeat_at"]}
                    )
        return taken

    def restore_job_heartbeat(self, job: dict[str, Any], heartbeat_at: datetime) -> None:
        """Put back the stale heartbeat of a job that was taken back but could not be handed on
        (the broker was away), so the next pass takes it back again."""
        with self._writing() as connection:
            connection.execute(
                jobs.update()
                .where(jobs.c.id == job["id"], jobs.c.status == "queued", jobs.c.owner.is_(None))
                .values(heartbeat_at=heartbeat_at)
            )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._reading() as connection:
            row = connection.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return None if row is None else _job_row(row)

    def recent_jobs(self, limit: int = 20) -> pd.DataFrame:
        """The newest jobs first (training requested through the API)."""
        query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        with self._reading() as connection:
            return pd.DataFrame(connection.execute(query).fetchall(), columns=[c.name for c in jobs.columns])

    # -- training leases (issue 20) ------------------------------------------------------------
    # One row per ticker being trained; each call below is one short transaction, and none is
    # held open while the ticker trains (stockcast.store.leases keeps the heartbeat).
    def _lease_clock(self, connection: Connection) -> datetime:
        """The time every holder of a lease is judged by. PostgreSQL's own clock, so machines
        whose clocks disagree a little still agree on expiries; a SQLite file lives on one
        machine, whose clock it is."""
        if self._is_sqlite:
            return datetime.now(UTC)
        return _as_utc(connection.execute(select(func.clock_timestamp())).scalar_one())

    def try_acquire_lease(
        self, ticker: str, owner: str, token: str, ttl_seconds: float
    ) -> tuple[bool, dict[str, Any] | None]:
        """Take ``ticker``'s lease when nobody holds it or its holder let it expire, in one
        statement (insert, or take over the expired row). Returns (True, the lease taken) or
        (False, the live holder's row, None if it was released meanwhile)."""
        from datetime import timedelta

        from sqlalchemy.dialects import postgresql, sqlite

        from stockcast.store.schema import training_leases as leases

        with self._writing() as connection:
            now = self._lease_clock(connection)
            row = {
                "ticker": ticker,
                "owner": owner,
                "token": token,
                "acquired_at": now,
                "renewed_at": now,
                "expires_at": now + timedelta(seconds=ttl_seconds),
            }
            insert: Any = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(
                leases
            ).values(row)
            statement = insert.on_conflict_do_update(
                index_elements=["ticker"],
                set_={name: insert.excluded[name] for name in row if name != "ticker"},
                where=leases.c.expires_at < now,
            ).returning(leases.c.token)
            taken = connection.execute(statement).scalar_one_or_none() == token
            if taken:
                return True, row
            holder = connection.execute(select(leases).where(leases.c.ticker == ticker)).mappings().first()
        return False, _lease_row(holder)

    def renew_lease(self, ticker: str, token: str, ttl_seconds: float) -> datetime | None:
        """Push the expiry of the lease ``token`` holds; its new expiry, or None when the token
        no longer holds the lease (released, or expired and taken by another)."""
        from datetime import timedelta

        from stockcast.store.schema import training_leases as leases

        with self._writing() as connection:
            now = self._lease_clock(connection)
            expires = now + timedelta(seconds=ttl_seconds)
            statement = (
                leases.update()
                .where(leases.c.ticker == ticker, leases.c.token == token)
                .values(renewed_at=now, expires_at=expires)
                .returning(leases.c.token)
            )
            renewed = connection.execute(statement).scalar_one_or_none() is not None
        return expires if renewed else None

    def release_lease(self, ticker: str, token: str) -> bool:
        """Give the lease up; False when ``token`` no longer held it."""
        from stockcast.store.schema import training_leases as leases

        with self._writing() as connection:
            result = connection.execute(
                leases.delete().where(leases.c.ticker == ticker, leases.c.token == token)
            )
        return int(result.rowcount) == 1

    def lease_holder(self, ticker: str) -> dict[str, Any] | None:
        """The row of ``ticker``'s lease (expired or not), None when nobody holds it."""
        from stockcast.store.schema import training_leases as leases

        with self._reading() as connection:
            row = connection.execute(select(leases).where(leases.c.ticker == ticker)).mappings().first()
        return _lease_row(row)

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()


# -- jobs and training leases (issue 20) -------------------------------------------------------
def _job_row(row: Any) -> dict[str, Any]:
    job = dict(row)
    if isinstance(job["tickers"], str):
        job["tickers"] = json.loads(job["tickers"])
    if isinstance(job["result"], str):
        job["result"] = json.loads(job["result"])
    for name in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        if job.get(name) is not None:
            job[name] = _as_utc(job[name])
    return job


def _compare_and_set(connection: Connection, row: Any, changes: dict[str, Any]) -> bool:
    """Apply ``changes`` to a job only if it is still as it was read (status, owner, heartbeat
    and attempts): one winner when processes race for it."""
    same = [jobs.c.id == row["id"], jobs.c.status == row["status"], jobs.c.attempts == row["attempts"]]
    for name in ("owner", "heartbeat_at"):
        column = jobs.c[name]
        same.append(column.is_(None) if row[name] is None else column == row[name])
    return int(connection.execute(jobs.update().where(*same).values(**changes)).rowcount) == 1


def _given_up(row: Any, max_attempts: int, now: datetime) -> dict[str, Any]:
    """The change that fails a job started ``max_attempts`` times, naming its last runner."""
    last = f"; the last run, by {row['owner']}, stopped without finishing" if row["owner"] else ""
    return {
        "status": "failed",
        "finished_at": now,
        "heartbeat_at": None,
        "error": f"gave up after {row['attempts']} attempts (STOCKCAST_JOB_MAX_ATTEMPTS={max_attempts}){last}",
    }


def _as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; every stored one is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _lease_row(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    lease = dict(row)
    for name in ("acquired_at", "renewed_at", "expires_at"):
        lease[name] = _as_utc(lease[name])
    return lease
