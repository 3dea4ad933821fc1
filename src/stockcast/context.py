"""The adapters of one process, built lazily from settings by whichever entry point runs."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from stockcast.settings import Settings

if TYPE_CHECKING:
    from stockcast.artifacts import ArtifactStore
    from stockcast.features.feature_store import FeatureStoreAdapter
    from stockcast.ingest.sources import PriceSource
    from stockcast.registry.mlflow_registry import Registry
    from stockcast.store.database import Store
    from stockcast.store.leases import TrainingLeases


class Context:
    """Holds settings and creates each adapter on first use, so a command that needs no
    registry never imports MLflow."""

    def __init__(self, settings: Settings, clock: datetime | None = None, activity: str | None = None):
        self.settings = settings
        self._clock = clock
        from stockcast.calendars import keep_calendars_in

        keep_calendars_in(settings.cache_dir / "calendars")
        # What this process is (``stockcast train``, the API), named in the leases it holds.
        self.activity = activity

    def now(self) -> datetime:
        """The current instant; fixed when a replay or a test injects one."""
        return self._clock or datetime.now(UTC)

    def set_clock(self, instant: datetime | None) -> None:
        """Move the injected clock (a replay's simulated day); None returns to real time."""
        self._clock = instant

    @cached_property
    def store(self) -> Store:
        from stockcast.store.database import Store

        store = Store(self.settings.resolved_database_url, self.settings.database_timeout_seconds)
        if self.settings.migrate_on_start:
            store.upgrade()
        else:
            store.check_schema()
        return store

    @cached_property
    def leases(self) -> TrainingLeases:
        """This process's training leases: one trainer per ticker across processes and machines."""
        from stockcast.store.leases import TrainingLeases, default_activity

        return TrainingLeases(
            self.store,
            self.activity or default_activity(),
            self.settings.training_lease_seconds,
            self.settings.training_lease_wait_seconds,
        )

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from stockcast.artifacts import ArtifactStore

        self.settings.export_for_libraries()  # s3fs/botocore read credentials from there
        return ArtifactStore(self.settings.resolved_artifact_root, self.settings.s3_endpoint_url)

    @cached_property
    def registry(self) -> Registry:
        from stockcast.registry.mlflow_registry import Registry

        self.settings.export_for_libraries()  # MLflow's S3 client reads only the environment
        return Registry(self.settings.resolved_tracking_uri, self.settings.mlflow_artifact_location)

    @cached_property
    def feature_store(self) -> FeatureStoreAdapter:
        from stockcast.features.feature_store import OFFLINE_TABLE_KEY, FeatureStoreAdapter, OfflineMirror

        if self.artifacts.is_local:
            return FeatureStoreAdapter(self.settings, self.artifacts.url(OFFLINE_TABLE_KEY))
        # A remote table (S3) is read by Feast from a local copy kept in step with it.
        copy = (self.settings.data_dir / "feast" / "offline" / "daily_features.parquet").resolve()
        return FeatureStoreAdapter(
            self.settings, str(copy), OfflineMirror(self.artifacts, OFFLINE_TABLE_KEY, copy)
        )

    @cached_property
    def source(self) -> PriceSource:
        from stockcast.ingest.factory import make_source

        return make_source(
            self.settings.source,
            timeout_seconds=self.settings.yahoo_timeout_seconds,
            retries=self.settings.yahoo_retries,
            cache_dir=str(self.settings.cache_dir),
        )
