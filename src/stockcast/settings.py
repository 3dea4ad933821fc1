"""One typed settings object for the whole product.

Values come from the environment (``STOCKCAST_`` prefix) or a ``.env`` file in the working
directory; ``MLFLOW_TRACKING_URI`` keeps its standard name. Everything the embedded defaults
write lands under ``data_dir``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TICKER_PATTERN = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-=]{0,14}$")
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "password", "replace-me", "your-api-key"}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# The longest horizon: about a quarter of trading sessions. Longer ones leave too few
# non-overlapping outcomes in a backtest for the gate's tests to mean anything.
MAX_HORIZON = 60
CACHE_FOLDER = "cache"  # under the data folder: what speeds up the next start, never data
ModelKind = Literal["naive", "drift", "ridge", "random_forest", "lightgbm", "arima", "xgboost"]


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it in one line."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STOCKCAST_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Path("data")
    tickers: Annotated[list[str], NoDecode] = ["AAPL", "MSFT", "GOOG", "IBM"]
    source: str = "auto"
    start_date: str = "2000-01-01"
    end_date: str | None = None
    database_url: str | None = None
    # Apply the relational store's migrations when a process opens it. Production may turn
    # this off and run `stockcast db upgrade` as a deployment step; then an outdated schema is
    # a clear error instead of a silent change.
    migrate_on_start: bool = True
    # How long an operation waits for a locked SQLite file, or for a database server that
    # refuses connections (restarting), before it fails.
    database_timeout_seconds: float = Field(default=30.0, gt=0)
    artifact_root: str | None = None
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "STOCKCAST_MLFLOW_TRACKING_URI"),
    )
    models: Annotated[list[ModelKind], NoDecode] = [
        "naive",
        "drift",
        "ridge",
        "random_forest",
        "lightgbm",
        "arima",
    ]
    # Forecast horizons in sessions of each ticker's exchange: a direct model, a champion and
    # intervals per horizon. The shortest one fills the API's one-day fields.
    horizons: Annotated[list[int], NoDecode] = [1, 5, 20]
    backtest_days: int = Field(default=250, ge=20)
    refit_every_days: int = Field(default=20, ge=1)
    min_train_days: int = Field(default=250, ge=60)
    # Rolling training window in sessions; empty or "expanding" trains on all history.
    train_window_days: int | None = Field(default=1000, ge=60)
    interval_level: float = Field(default=0.9, gt=0.5, lt=1.0)
    promotion_margin: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Significance level of the gate's one-sided tests (registry/promotion.py).
    promotion_alpha: float = Field(default=0.05, gt=0.0, le=0.5)
    retrain_after_days: int = Field(default=20, ge=1)
    yahoo_timeout_seconds: float = Field(default=20.0, gt=0)
    yahoo_retries: int = Field(default=2, ge=0)
    # Feast online store: sqlite (under data_dir), redis://[:password@]host:port[/db] or
    # postgresql://user:password@host:port/database.
    feast_online_store: str = "sqlite"
    # S3-compatible endpoint for s3:// artifact roots (MinIO, moto); AWS itself when unset.
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "STOCKCAST_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"
        ),
    )
    # S3 credentials under their standard names, so that they may live in .env too; the
    # libraries that read only the process environment (botocore, MLflow) get them from
    # `export_for_libraries`. Unset: the usual AWS chain (variables, files, instance roles).
    aws_access_key_id: SecretStr | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(default=None, validation_alias="AWS_SECRET_ACCESS_KEY")
    # Where the dashboard sends its forecast requests; default http://{host}:{port}.
    api_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # API keys for mutating routes (comma-separated); kept only as SHA-256 digests in memory.
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    read_requires_key: bool = False
    cors_origins: Annotated[list[str], NoDecode] = []
    batch_max_tickers: int = Field(default=50, ge=1, le=1000)
    champion_refresh_seconds: float = Field(default=30.0, gt=0)
    # How long the API serves a ticker's forecast before it reads the online store again. For
    # one more such window the kept forecast still answers while that read runs behind, so a
    # materialization shows within twice this many seconds and no request waits for a read.
    feature_refresh_seconds: float = Field(default=5.0, ge=0)
    # Forecast requests per minute per client (API key, else address); 0 turns the limit off.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    random_seed: int = 42
    # Monitoring: drift when the RMSE of the last `drift_window` scored forecasts exceeds
    # `drift_threshold` x the champion's backtest RMSE on `drift_days` scored days in a row.
    drift_window: int = Field(default=20, ge=2)
    drift_threshold: float = Field(default=1.5, gt=0)
    drift_days: int = Field(default=5, ge=1)
    # Data drift (Evidently): the last `drift_window` sessions' features against the
    # `reference_days` sessions the champion was trained on up to its data end.
    reference_days: int = Field(default=250, ge=20)
    # Share of drifted features that puts a ticker on watch.
    drift_share_watch: float = Field(default=0.5, gt=0, le=1)
    # Evidently reports (about 1.5 s a ticker) are written when a ticker has none yet, its
    # champion or status changed, or this many weekdays have passed; days between link the
    # latest report. The drift figures are computed every day without Evidently (the same KS
    # test). `stockcast monitor --reports` writes the reports of all now.
    report_every_days: int = Field(default=5, ge=1)
    # False: the Evidently reports are written only when asked (`stockcast monitor --reports`,
    # say weekly), never by the daily cycle; the daily drift figures are computed all the same.
    reports_when_due: bool = True
    # `stockcast summary`: an OpenAI-compatible endpoint (base URL ending in /v1), model and key
    # let a language model rewrite the template's text. All three unset (default): template only.
    summary_llm_url: str | None = None
    summary_llm_model: str | None = None
    summary_llm_api_key: SecretStr | None = None
    summary_llm_timeout_seconds: float = Field(default=20.0, gt=0)
    # Prometheus Pushgateway for batch jobs' monitoring gauges, e.g. http://pushgateway:9091.
    pushgateway_url: str | None = None
    # Scale-out of training: a Dask scheduler (tcp://host:8786) runs the backtests; without one,
    # `training_workers` local processes (1: in the calling process).
    dask_address: str | None = None
    training_workers: int = Field(default=1, ge=1, le=64)
    # One trainer per ticker (store/leases.py): a lease lapses this long after its holder's last
    # heartbeat (one every third of it), so a holder that died frees the ticker within it.
    training_lease_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)
    # How long `train`, `retrain`, `models promote`/`rollback` and API jobs wait for a ticker
    # another process is training before they give up naming it; 0: never wait.
    training_lease_wait_seconds: float = Field(default=600.0, ge=0.0)
    # Analytics copy of the forecast log, its outcomes and the monitoring rows in ClickHouse
    # (http://user:password@host:8123/database), sent at the end of each daily cycle and by
    # `stockcast export clickhouse`; unset: none.
    clickhouse_url: SecretStr | None = None
    # Training jobs (POST /train): with a broker (redis://host:6379/1) they are sent to Celery
    # workers (`stockcast worker`); without one the API runs them on its own threads. Either way
    # the job's row is beaten every `job_heartbeat_seconds` by the process running it; a row not
    # beaten for three beats belongs to a dead process and is queued again, up to
    # `job_max_attempts` starts, then failed.
    celery_broker_url: SecretStr | None = None
    # Redis hands an unacknowledged message to another worker after this long: keep it above
    # the longest training (a job's tickers, tuning included), or one job trains twice at once.
    celery_visibility_timeout_seconds: float = Field(default=21600.0, ge=60.0)
    job_heartbeat_seconds: float = Field(default=10.0, ge=0.1, le=600.0)
    job_max_attempts: int = Field(default=3, ge=1, le=100)
    # Schedules of `stockcast flows serve` (cron, in `schedule_timezone`): the daily cycle after
    # the US close on weekdays (the flow itself skips exchange holidays), tuning on Saturdays.
    daily_cron: str = "30 18 * * 1-5"
    tune_cron: str = "0 6 * * 6"
    schedule_timezone: str = "America/New_York"

    @field_validator("tickers", mode="before")
    @classmethod
    def _parse_tickers(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, tickers: list[str]) -> list[str]:
        if not tickers:
            raise ValueError("no tickers given; set a comma-separated list such as AAPL,MSFT")
        normalised = [ticker.upper() for ticker in tickers]
        bad = [ticker for ticker in normalised if not TICKER_PATTERN.match(ticker)]
        if bad:
            raise ValueError(f"not a ticker symbol: {', '.join(bad)}")
        return list(dict.fromkeys(normalised))

    @field_validator("clickhouse_url")
    @classmethod
    def _check_clickhouse_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(url.get_secret_value())
            database = parts.path.strip("/")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "expected http(s)://user:password@host:port/database (ClickHouse's HTTP "
                    f"interface; user and password optional), got scheme {parts.scheme or 'none'!r}"
                )
            if database and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
                raise ValueError(f"not a ClickHouse database name: {database!r}")
        return url

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _parse_lists(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("api_keys")
    @classmethod
    def _no_placeholder_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            secret = key.get_secret_value()
            if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
                raise ValueError("an API key is a placeholder or shorter than 16 characters")
        return keys

    @field_validator("train_window_days", mode="before")
    @classmethod
    def _expanding_window(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"", "expanding", "none"}:
            return None
        return value

    @field_validator("horizons", mode="before")
    @classmethod
    def _parse_horizons(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("horizons")
    @classmethod
    def _check_horizons(cls, horizons: list[int]) -> list[int]:
        if not horizons:
            raise ValueError("no horizons given; set a comma-separated list of sessions such as 1,5,20")
        bad = [horizon for horizon in horizons if not 1 <= horizon <= MAX_HORIZON]
        if bad:
            raise ValueError(f"a horizon is a number of sessions from 1 to {MAX_HORIZON}, got {bad}")
        return sorted(set(horizons))

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("models")
    @classmethod
    def _naive_always_included(cls, models: list[str]) -> list[str]:
        # The naive forecast is the yardstick every other model is judged against.
        return list(dict.fromkeys(["naive", *models]))

    @field_validator("source")
    @classmethod
    def _check_source(cls, source: str) -> str:
        if source in {"auto", "yahoo", "sample"}:
            return source
        if source.startswith("file:") and len(source) > len("file:"):
            return source
        raise ValueError("must be auto, yahoo, sample or file:<path or URL>")

    @field_validator("feast_online_store")
    @classmethod
    def _check_online_store(cls, value: str) -> str:
        if value == "sqlite" or value.startswith(("redis://", "postgresql://", "postgres://")):
            return value
        raise ValueError("must be sqlite, redis://host:port[/db] or postgresql://user:password@host:port/db")

    @field_validator("start_date", "end_date")
    @classmethod
    def _check_date(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        from datetime import date

        try:
            date.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"not an ISO date (YYYY-MM-DD): {value!r}") from error
        return value

    @field_validator("summary_llm_url")
    @classmethod
    def _check_summary_llm_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        from urllib.parse import urlsplit

        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(
                f"must be an http(s) URL (an OpenAI-compatible base such as https://host/v1), got {url!r}"
            )
        return url

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(url)
        except ArgumentError as error:
            raise ValueError(f"not a SQLAlchemy URL: {url.split('://')[0]}://...") from error
        return url

    @model_validator(mode="after")
    def _check_dates_order(self) -> Settings:
        if self.end_date and self.start_date and self.end_date <= self.start_date:
            raise ValueError("end_date must be after start_date")
        return self

    @model_validator(mode="after")
    def _check_summary_llm(self) -> Settings:
        from urllib.parse import urlsplit

        if bool(self.summary_llm_url) != bool(self.summary_llm_model):
            raise ValueError("summary_llm_url and summary_llm_model go together (set both or neither)")
        url = urlsplit(self.summary_llm_url or "")
        if self.summary_llm_api_key and url.scheme == "http" and url.hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                "summary_llm_url must be https when summary_llm_api_key is set (plain http only on "
                "loopback): the key would travel unencrypted"
            )
        return self

    def export_for_libraries(self) -> None:
        """Hand the settings that boto3/s3fs and MLflow read only from the environment to
        them (values from .env included); what the environment already says wins."""
        import os

        exported = {
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url,
        }
        for name, value in exported.items():
            if value is not None:
                secret = value.get_secret_value() if isinstance(value, SecretStr) else value
                os.environ.setdefault(name, secret)

    @property
    def cache_dir(self) -> Path:
        """What processes keep to go faster next time (built exchange calendars, yfinance's
        time zones): never data, so a folder holding only this counts as empty."""
        return self.data_dir / CACHE_FOLDER

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'stockcast.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> str:
        return self.artifact_root or str((self.data_dir / "artifacts").resolve())

    @property
    def resolved_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_location(self) -> str:
        return f"{self.resolved_artifact_root.rstrip('/')}/mlflow"


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad setting by its environment variable and saying why."""
    parts = []
    for issue in error.errors():
        field = ".".join(str(part) for part in issue["loc"]) or "settings"
        env_name = "MLFLOW_TRACKING_URI" if field == "mlflow_tracking_uri" else f"STOCKCAST_{field.upper()}"
        message = str(issue["msg"]).removeprefix("Value error, ")
        parts.append(f"{env_name}: {message}")
    return "invalid setting " + "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's multi-line report into a one-line SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
