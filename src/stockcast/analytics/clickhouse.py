"""The forecast log, its scored outcomes and the monitoring rows, copied to ClickHouse when
``STOCKCAST_CLICKHOUSE_URL`` is set (``http://user:password@host:8123/database``).

The relational store stays the record; ClickHouse gets a copy for analytics, by its HTTP
interface (no client library: the interface every ClickHouse version speaks):

- two ``ReplacingMergeTree`` tables keyed like the store (a forecast by its request id, a
  monitoring row by ticker, day and horizon), each row with a ``version`` (the microsecond of its last
  change in the store: a forecast's is when it was scored, if it was), so a row sent twice, or
  sent again once scored, counts once: queries read ``FINAL`` (a merge removes the older
  copies only in its own time);
- each export sends what changed in the store since a day before the newest version ClickHouse
  holds (its high-water mark, read back from ClickHouse itself), so an export after an outage
  sends what the outage kept back, a row committed late is not missed, and a rerun adds no
  row that FINAL counts;
- an export that fails is reported and left for the next one: nothing in the store depends on
  it, so a ClickHouse outage never loses or blocks a forecast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

TABLES = {
    "forecasts": """
        CREATE TABLE IF NOT EXISTS {database}.forecasts (
            request_id String, ticker String, as_of Date, target_date Date,
            predicted_close Float64, lower Float64, upper Float64, level Float64,
            model_name String, model_version String, model_kind String, origin String,
            created_at DateTime('UTC'), last_close Nullable(Float64),
            actual_close Nullable(Float64), error Nullable(Float64), actual_date Nullable(Date),
            abs_error Nullable(Float64), pct_error Nullable(Float64), covered Nullable(UInt8),
            naive_error Nullable(Float64), evaluated_at Nullable(DateTime('UTC')), version UInt64,
            horizon UInt16 DEFAULT 1
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (ticker, request_id)""",
    "monitoring": """
        CREATE TABLE IF NOT EXISTS {database}.monitoring (
            ticker String, as_of Date, model_version Nullable(String), evaluated UInt32,
            rolling_rmse Nullable(Float64), rolling_naive_rmse Nullable(Float64),
            backtest_rmse Nullable(Float64), rmse_ratio Nullable(Float64), days_above UInt32,
            coverage Nullable(Float64), directional_accuracy Nullable(Float64), mae Nullable(Float64),
            drift_share Nullable(Float64), status String, computed_at DateTime('UTC'), version UInt64,
            horizon UInt16 DEFAULT 1
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (ticker, as_of, horizon)""",
}
# Tables created before horizons get the column. The monitoring table's key takes it too, or
# rows of two horizons would merge; ClickHouse cannot put a column with a default into an
# existing key, so that table is rebuilt: copied with horizon 1 (every row then was one
# session ahead) into a table of the new shape, which takes the old one's name.
UPGRADES = {
    "forecasts": ["ALTER TABLE {database}.forecasts ADD COLUMN horizon UInt16 DEFAULT 1"],
    "monitoring": [
        "DROP TABLE IF EXISTS {database}.monitoring_upgrading",
        TABLES["monitoring"].replace("{database}.monitoring (", "{database}.monitoring_upgrading ("),
        "INSERT INTO {database}.monitoring_upgrading ({columns}) SELECT {columns} FROM {database}.monitoring",
        "RENAME TABLE {database}.monitoring TO {database}.monitoring_before_horizons, "
        "{database}.monitoring_upgrading TO {database}.monitoring",
        "DROP TABLE {database}.monitoring_before_horizons",
    ],
}
FORECAST_COLUMNS = [
    "request_id", "ticker", "as_of", "target_date", "predicted_close", "lower", "upper", "level",
    "model_name", "model_version", "model_kind", "origin", "created_at", "last_close",
    "actual_close", "error", "actual_date", "abs_error", "pct_error", "covered", "naive_error",
    "evaluated_at", "horizon",
]  # fmt: skip
MONITORING_COLUMNS = [
    "ticker", "as_of", "model_version", "evaluated", "rolling_rmse", "rolling_naive_rmse",
    "backtest_rmse", "rmse_ratio", "days_above", "coverage", "directional_accuracy", "mae",
    "drift_share", "status", "computed_at", "horizon",
]  # fmt: skip


OVERLAP = timedelta(days=1)


class ClickHouseError(RuntimeError):
    """ClickHouse did not answer, or refused a statement (the message says which)."""


class ClickHouse:
    """A ClickHouse server's HTTP interface, one statement per request."""

    def __init__(self, url: str, timeout_seconds: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "STOCKCAST_CLICKHOUSE_URL: expected http(s)://user:password@host:port/database, "
                f"got scheme {parts.scheme or 'none'!r}"
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.endpoint = f"{parts.scheme}://{host}:{parts.port or 8123}/"
        self.database = parts.path.strip("/") or "default"
        if not self.database.replace("_", "").isalnum():
            raise ValueError(f"STOCKCAST_CLICKHOUSE_URL: not a database name: {self.database!r}")
        self.auth = (unquote(parts.username or "default"), unquote(parts.password or ""))
        self.timeout = timeout_seconds

    def execute(self, statement: str, body: bytes | None = None) -> str:
        import httpx

        try:
            response = httpx.post(
                self.endpoint,
                params={"query": statement},
                content=body,
                headers={"X-ClickHouse-User": self.auth[0], "X-ClickHouse-Key": self.auth[1]},
                timeout=self.timeout,
            )
        except httpx.HTTPError as error:
            raise ClickHouseError(f"ClickHouse at {self.endpoint} is unreachable: {error}") from error
        if response.status_code != 200:
            first = response.text.strip().split("\n", 1)[0]
            raise ClickHouseError(
                f"ClickHouse refused {statement.split(maxsplit=1)[0]}: {response.status_code} {first}"
            )
        return response.text

    def ensure_tables(self) -> None:
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        for table, statement in TABLES.items():
            self.execute(statement.format(database=self.database))
            if not self._has_column(table, "horizon"):
                before = ", ".join([*MONITORING_COLUMNS[:-1], "version"])  # the columns it had
                for step in UPGRADES[table]:
                    self.execute(step.format(database=self.database, columns=before))

    def _has_column(self, table: str, column: str) -> bool:
        self._table(table)  # a table of ours; the database name was checked when parsed
        if not column.isidentifier():
            raise ValueError(f"not a column name: {column!r}")
        found = self.execute(
            "SELECT count() FROM system.columns "  # noqa: S608  # nosec B608: checked names
            f"WHERE database = '{self.database}' AND table = '{table}' AND name = '{column}'"
        )
        return int(found.strip() or 0) > 0

    def _table(self, table: str) -> str:
        """A table of ours, qualified (both names checked: nothing else is put in a statement)."""
        if table not in TABLES:
            raise ValueError(f"not a stockcast table: {table!r}")
        return f"{self.database}.{table}"

    def high_water(self, table: str) -> int:
        """The newest version the table holds (0 when empty)."""
        return int(self.execute(f"SELECT max(version) FROM {self._table(table)}").strip() or 0)  # noqa: S608  # nosec B608: checked names

    def insert(self, table: str, rows: Iterable[dict[str, Any]]) -> int:
        lines = [json.dumps(row, allow_nan=False) for row in rows]
        if lines:
            self.execute(f"INSERT INTO {self._table(table)} FORMAT JSONEachRow", "\n".join(lines).encode())
        return len(lines)

    def count(self, table: str) -> int:
        """Rows as analytics sees them: one per key (FINAL), whatever the merges have done."""
        return int(self.execute(f"SELECT count() FROM {self._table(table)} FINAL").strip())  # noqa: S608  # nosec B608: checked names


@dataclass
class ExportReport:
    forecasts: int
    monitoring: int
    since: datetime | None


def version_of(*instants: datetime | None) -> int:
    """A row's version: the microsecond of its newest change."""
    newest = max(_utc(instant) for instant in instants if instant is not None)
    return int(newest.timestamp() * 1_000_000)


def instant_of(version: int) -> datetime | None:
    return datetime.fromtimestamp(version / 1_000_000, UTC) if version else None


def _utc(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _cell(value: Any) -> Any:
    """A store value as ClickHouse's JSONEachRow takes it (missing: null)."""
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return _cell(value.item())
    return value


def export(context: Any, since: datetime | None = None) -> ExportReport:
    """Send the forecasts and monitoring rows changed since ``since`` (by default: since the
    newest each ClickHouse table holds). Raises ``ClickHouseError`` when ClickHouse is away."""
    import pandas as pd

    settings = context.settings
    if settings.clickhouse_url is None:
        raise ValueError("STOCKCAST_CLICKHOUSE_URL is not set: there is no ClickHouse to export to")
    clickhouse = ClickHouse(settings.clickhouse_url.get_secret_value(), settings.database_timeout_seconds)
    clickhouse.ensure_tables()
    store = context.store
    counts = {}
    for table, columns, changed_since, stamps in (
        ("forecasts", FORECAST_COLUMNS, store.forecasts_changed_since, ("created_at", "evaluated_at")),
        ("monitoring", MONITORING_COLUMNS, store.monitoring_changed_since, ("computed_at",)),
    ):
        newest = instant_of(clickhouse.high_water(table))
        # From a day before the newest version sent: a row stamped before it but committed
        # after the last export (the API's forecast log writes in batches; writers' clocks
        # differ) is sent now. Rows sent again are the same rows, counted once under FINAL.
        start = since or (newest - OVERLAP if newest is not None else None)
        frame: pd.DataFrame = changed_since(start)
        rows = []
        for record in frame.to_dict("records"):
            row = {column: _cell(record.get(column)) for column in columns}
            row["version"] = version_of(*(_instant(record.get(stamp)) for stamp in stamps))
            rows.append(row)
        counts[table] = clickhouse.insert(table, rows)
    return ExportReport(counts["forecasts"], counts["monitoring"], since)


def _instant(value: Any) -> datetime | None:
    import pandas as pd

    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.to_pydatetime()
