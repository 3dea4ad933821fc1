"""Feast adapter: the one module that imports Feast.

The feature repository lives in the package as definitions (``definitions``); its
``feature_store.yaml`` and a small ``repo.py`` are generated from stockcast's settings into
``<data_dir>/feature_repo``, so the ``feast`` command line works there too
(``feast feature-views list``). Training reads point-in-time historical features, the API reads
the online store; both through the ``next_close`` feature service.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stockcast.features.build import FEATURE_COLUMNS

if TYPE_CHECKING:
    from feast import FeatureStore

    from stockcast.artifacts import ArtifactStore
    from stockcast.settings import Settings

log = logging.getLogger(__name__)

PROJECT = "stockcast"
ENTITY = "ticker"
FEATURE_VIEW = "daily_features"
FEATURE_SERVICE = "next_close"
TIMESTAMP_FIELD = "event_timestamp"
# Where the offline table Feast reads lives in the artifact store.
OFFLINE_TABLE_KEY = "features/daily_features.parquet"
# A trading day's features stay valid through long weekends and short market closures.
TTL = timedelta(days=7)
VIEW_FIELDS = ["close", *FEATURE_COLUMNS]


FEAST_METRICS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """typeguard's ``typechecked`` as it behaves under ``python -O``: the target unchanged."""
    return target if target is not None else (lambda decorated: decorated)


# Feast's online stores that serve versioned reads (feast/infra/online_stores/online_store.py).
VERSIONED_READ_STORES = frozenset(
    {
        "feast.infra.online_stores.sqlite.SqliteOnlineStore",
        "feast.infra.online_stores.mysql_online_store.mysql.MySQLOnlineStore",
        "feast.infra.online_stores.postgres_online_store.postgres.PostgreSQLOnlineStore",
        "feast.infra.online_stores.faiss_online_store.FaissOnlineStore",
        "feast.infra.online_stores.redis.RedisOnlineStore",
        "feast.infra.online_stores.dynamodb.DynamoDBOnlineStore",
        "feast.infra.online_stores.milvus_online_store.milvus.MilvusOnlineStore",
    }
)


def _answer_versioned_read_support(store: FeatureStore) -> None:
    """Settle, from the online store's class and its bases, whether it serves versioned reads.

    Feast works it out on the first online read by importing the module of every store that
    does (MySQL, PostgreSQL, FAISS, Redis, DynamoDB, Milvus, with redis and botocore behind
    them) for one ``isinstance`` check: 0.36 s before a started API's first forecast. The
    answer is the same without the imports. Left to Feast if its internals have moved."""
    try:
        online = store._get_provider().online_store
        if getattr(online, "_versioned_read_supported", True) is not None:
            return
        lineage = {f"{kind.__module__}.{kind.__qualname__}" for kind in type(online).__mro__}
        online._versioned_read_supported = bool(lineage & VERSIONED_READ_STORES)
    except Exception as error:  # a Feast without these internals reads as it always did
        log.debug("Feast's versioned-read check left to Feast: %s", error)


def import_feast() -> None:
    """Import Feast without its import-time side effect on metrics.

    Importing ``feast`` points PROMETHEUS_MULTIPROC_DIR at a temporary folder, which switches
    prometheus_client, for the whole process and its children, to file-backed values shared
    by metric name: two API instances in one process would then count each other's requests.
    prometheus_client fixes its value class when first imported, so it is imported first and
    Feast's variables are removed again.
    """
    if "feast" in sys.modules:
        return
    import prometheus_client.values  # noqa: F401 - settles in-memory values before Feast runs

    preset = {name: os.environ.get(name) for name in FEAST_METRICS_VARIABLES}
    # Feast decorates dozens of classes with typeguard's @typechecked, which re-parses and
    # recompiles their source at import: 5 of Feast's 5.5 s import here (cProfile), in every
    # command and at every API start. Those run-time checks are a development aid (typeguard
    # skips them under `python -O`); stockcast's calls into Feast are type-checked by mypy.
    import typeguard

    instrument = typeguard.typechecked
    typeguard.typechecked = _unchecked
    # Feast's modules put "once" filters for DeprecationWarning ahead of the caller's at import,
    # which brought every library's deprecation notices back to our users' terminals: the
    # filters are restored to the caller's after the import.
    try:
        with warnings.catch_warnings():
            import feast  # noqa: F401
    finally:
        typeguard.typechecked = instrument

    for name, value in preset.items():
        if value is None:
            os.environ.pop(name, None)
    # The notice Feast's DuckDB engine triggers on every retrieval (ibis calling a renamed
    # DuckDB method) is for those projects, whatever the caller's policy.
    warnings.filterwarnings("ignore", message="fetch_arrow_table", category=DeprecationWarning)


def definitions(offline_path: str, s3_endpoint: str | None = None) -> list[Any]:
    """Entity, feature view and feature service over the offline table at ``offline_path``."""
    import_feast()
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    ticker = Entity(name=ENTITY, join_keys=[ENTITY], value_type=ValueType.STRING, description="Yahoo symbol")
    source = FileSource(
        name="daily_features_source",
        path=offline_path,
        timestamp_field=TIMESTAMP_FIELD,
        s3_endpoint_override=s3_endpoint,
    )
    view = FeatureView(
        name=FEATURE_VIEW,
        entities=[ticker],
        ttl=TTL,
        schema=[Field(name=name, dtype=Float64) for name in VIEW_FIELDS],
        source=source,
        online=True,
        description="Technical features of each ticker's daily bar, stamped at the session close.",
    )
    service = FeatureService(name=FEATURE_SERVICE, features=[view], description="What the forecasters read.")
    return [ticker, view, service]


# The generated feature_store.yaml names this variable instead of writing a password into a
# file; Feast expands it when the feast command line reads the file.
ONLINE_PASSWORD_VARIABLE = "STOCKCAST_FEAST_ONLINE_PASSWORD"  # noqa: S105 - a variable name, not a secret


def _online_store_config(spec: str, feast_dir: Path, password: str | None) -> dict[str, Any]:
    from urllib.parse import urlsplit

    if spec == "sqlite":
        return {"type": "sqlite", "path": str(feast_dir / "online.db")}
    url = urlsplit(spec)
    if url.scheme == "redis":
        database = url.path.strip("/") or "0"
        connection = f"{url.hostname}:{url.port or 6379},db={database}"
        if url.password:
            connection += f",password={password}"
        return {"type": "redis", "connection_string": connection}
    return {
        "type": "postgres",
        "host": url.hostname,
        "port": url.port or 5432,
        "database": url.path.strip("/"),
        "user": url.username,
        "password": password,
        "sslmode": "disable" if url.hostname in {"127.0.0.1", "localhost"} else "require",
    }


def feast_config(settings: Settings, secrets_inline: bool) -> dict[str, Any]:
    """The feature store's configuration from stockcast's settings. With ``secrets_inline``
    false, a password is replaced by a reference to ``STOCKCAST_FEAST_ONLINE_PASSWORD``."""
    from urllib.parse import unquote, urlsplit

    feast_dir = (settings.data_dir / "feast").resolve()
    secret = urlsplit(settings.feast_online_store).password
    password = unquote(secret) if secrets_inline and secret else f"${{{ONLINE_PASSWORD_VARIABLE}}}"
    offline: dict[str, Any] = {"type": "duckdb"}
    return {
        "project": PROJECT,
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(feast_dir / "registry.db"),
            "cache_ttl_seconds": 60,
        },
        "online_store": _online_store_config(settings.feast_online_store, feast_dir, password),
        # DuckDB runs the point-in-time join over the parquet source: 0.2 s where the
        # pandas/dask file engine took 57 s for 11,600 entity rows.
        "offline_store": offline,
        "entity_key_serialization_version": 3,
    }


def render_config(settings: Settings) -> str:
    import yaml

    header = "# Generated by stockcast from its settings; edits are overwritten.\n"
    return header + yaml.safe_dump(feast_config(settings, secrets_inline=False), sort_keys=False)


def render_repo(offline_path: str, s3_endpoint: str | None) -> str:
    return "\n".join(
        [
            '"""Generated by stockcast: the feature definitions, for the feast command line."""',
            "",
            "from stockcast.features.feature_store import definitions",
            "",
            f"ticker, daily_features, next_close = definitions({offline_path!r}, {s3_endpoint!r})",
            "",
        ]
    )


class FeatureStoreNotReadyError(LookupError):
    """The feature store has no definitions or data yet."""


@dataclass(frozen=True)
class Materialized:
    start: datetime
    end: datetime
    rows: int
    first_load: bool


@contextmanager
def _quiet() -> Iterator[None]:
    """Feast prints progress to stdout and warns about its own internals; keep both out of
    stockcast's output."""
    with open(os.devnull, "w") as sink, redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def session_close_timestamps(frame: pd.DataFrame) -> pd.Series:
    """Each row's session close in UTC: the instant its bar, and so its features, are final."""
    from stockcast.calendars import calendar_name_for, get_calendar

    stamps = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    calendars = frame["ticker"].map(calendar_name_for)
    for name, rows in frame.groupby(calendars, sort=False):
        closes = get_calendar(str(name)).closes
        closes.index = pd.DatetimeIndex(closes.index).tz_localize(None)
        matched = pd.Series(closes.reindex(pd.DatetimeIndex(rows["date"])).to_numpy(), index=rows.index)
        # A bar on a day the calendar does not know as a session: stamp it at the day's end.
        fallback = (rows["date"] + pd.Timedelta(hours=23, minutes=59)).dt.tz_localize("UTC")
        stamps.loc[rows.index] = pd.to_datetime(matched, utc=True).fillna(fallback)
    return stamps


def offline_frame(features: pd.DataFrame) -> pd.DataFrame:
    """The offline table Feast reads: complete feature rows with their event timestamp."""
    complete = features.dropna(subset=FEATURE_COLUMNS)
    table = complete[["ticker", "date", *VIEW_FIELDS]].copy()
    table[TIMESTAMP_FIELD] = session_close_timestamps(table)
    return table.reset_index(drop=True)


class OfflineMirror:
    """A local copy of the offline table kept in step with the artifact store.

    Feast's DuckDB engine reads remote parquet only through DuckDB's httpfs extension, which
    it downloads at run time from DuckDB's own site; a process that cannot reach that site
    (or should not) reads this copy instead. The table of record stays in the artifact store;
    the copy is refreshed whenever the object there changed (one metadata request)."""

    def __init__(self, artifacts: ArtifactStore, key: str, path: Path):
        self.artifacts, self.key, self.path = artifacts, key, path
        self._marker = path.with_name(path.name + ".version")

    def sync(self) -> None:
        if not self.artifacts.exists(self.key):
            return
        current = self.artifacts.version(self.key)
        if self.path.exists() and self._marker.exists() and self._marker.read_text() == current:
            return
        self.artifacts.download(self.key, self.path)
        self._marker.write_text(current)


class FeatureStoreAdapter:
    def __init__(self, settings: Settings, offline_path: str, mirror: OfflineMirror | None = None):
        """``offline_path``: the parquet Feast's offline source reads; with ``mirror``, a local
        copy that is brought up to date before each read."""
        self.settings = settings
        self.offline_path = offline_path
        self.mirror = mirror
        self.s3_endpoint = settings.s3_endpoint_url
        self.repo_dir = (settings.data_dir / "feature_repo").resolve()
        self._store: FeatureStore | None = None
        self._feature_service: Any = None

    def write_repository(self) -> Path:
        (self.settings.data_dir / "feast").mkdir(parents=True, exist_ok=True)
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.repo_dir / "feature_store.yaml", render_config(self.settings))
        _write_if_changed(self.repo_dir / "repo.py", render_repo(self.offline_path, self.s3_endpoint))
        return self.repo_dir

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            import_feast()
            from feast import FeatureStore
            from feast.repo_config import RepoConfig

            self.write_repository()
            # In process the configuration is built from settings, secrets included; only
            # the file for the feast command line carries references instead.
            config = RepoConfig(repo_path=self.repo_dir, **feast_config(self.settings, secrets_inline=True))
            self._store = FeatureStore(repo_path=str(self.repo_dir), config=config)
            _answer_versioned_read_support(self._store)
        return self._store

    def apply(self) -> bool:
        """Register the definitions; applying the same ones again changes nothing. True when the
        view's features changed (or it is new): its online rows then need a full reload."""
        import_feast()
        from feast.errors import FeatureViewNotFoundException

        try:
            registered = {field.name for field in self.store.get_feature_view(FEATURE_VIEW).features}
        except FeatureViewNotFoundException:
            registered = set()
        with _quiet():
            self.store.apply(definitions(self.offline_path, self.s3_endpoint))
        self._feature_service = None
        return registered != set(VIEW_FIELDS)

    def last_materialized(self) -> datetime | None:
        view = self.store.get_feature_view(FEATURE_VIEW)
        intervals = view.materialization_intervals
        return max(end for _, end in intervals) if intervals else None

    def materialize(self, table: pd.DataFrame, full: bool = False) -> Materialized:
        """Load the offline rows newer than the last materialization into the online store, or
        all of them when ``full`` (the view's features changed) or on the first load.

        The first load names its range: Feast's incremental mode would start at now minus the
        TTL and so load nothing of a historical table.
        """
        newest = table[TIMESTAMP_FIELD].max().to_pydatetime() + timedelta(seconds=1)
        if self.mirror is not None:
            self.mirror.sync()
        previous = self.last_materialized()
        if previous is None or full:
            start = table[TIMESTAMP_FIELD].min().to_pydatetime() - timedelta(seconds=1)
            with _quiet():
                self.store.materialize(start_date=start, end_date=newest, feature_views=[FEATURE_VIEW])
            return Materialized(start, newest, len(table), first_load=True)
        previous = previous.astimezone(UTC)
        if newest <= previous:
            return Materialized(previous, previous, 0, first_load=False)
        with _quiet():
            self.store.materialize_incremental(end_date=newest, feature_views=[FEATURE_VIEW])
        fresh = int((table[TIMESTAMP_FIELD] >= previous).sum())
        return Materialized(previous, newest, fresh, first_load=False)

    def historical(self, entities: pd.DataFrame) -> pd.DataFrame:
        """Point-in-time features for (ticker, event_timestamp) rows: for each row the latest
        feature row stamped at or before its timestamp, within the TTL."""
        if self.mirror is not None:
            self.mirror.sync()
        job = self.store.get_historical_features(entity_df=entities, features=self._service())
        frame = job.to_df()
        frame[TIMESTAMP_FIELD] = pd.to_datetime(frame[TIMESTAMP_FIELD], utc=True)
        if "date" in frame.columns:
            dates = pd.to_datetime(frame["date"])
            if isinstance(dates.dtype, pd.DatetimeTZDtype):
                # DuckDB hands naive timestamps back as UTC; the session date is the naive value.
                dates = dates.dt.tz_localize(None)
            frame["date"] = dates.astype("datetime64[ns]")
        return frame.sort_values([ENTITY, TIMESTAMP_FIELD], kind="stable").reset_index(drop=True)

    def online(self, tickers: list[str]) -> pd.DataFrame:
        """The online vector of each ticker with its event timestamp (NaT when it has none)."""
        response = self.store.get_online_features(
            features=self._service(), entity_rows=[{ENTITY: ticker} for ticker in tickers]
        )
        values = response.to_dict(include_event_timestamps=True)
        frame = pd.DataFrame({name: values[name] for name in [ENTITY, *VIEW_FIELDS]})
        seconds = pd.Series(values["close__ts"], dtype="float64")
        # Feast reports 0 seconds for an entity it has no row for.
        frame[TIMESTAMP_FIELD] = pd.to_datetime(seconds.where(seconds > 0), unit="s", utc=True)
        return frame

    def _service(self) -> Any:
        if self._feature_service is None:
            import_feast()
            from feast.errors import FeatureServiceNotFoundException

            try:
                self._feature_service = self.store.get_feature_service(FEATURE_SERVICE)
            except FeatureServiceNotFoundException as error:
                raise FeatureStoreNotReadyError(
                    "the feature repository has not been applied yet; run `stockcast features`"
                ) from error
        return self._feature_service

    def write_online(self, rows: pd.DataFrame) -> None:
        self.store.write_to_online_store(FEATURE_VIEW, rows)
