"""The relational schema, declared once. Alembic migrations create it; code reads it from here."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

AWAITING, SCORED = text("actual_close IS NULL"), text("actual_close IS NOT NULL")

prices = Table(
    "prices",
    metadata,
    Column("ticker", String(32), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("adj_close", Float),
    Column("volume", Float),
    Column("dividends", Float, nullable=False, server_default="0"),
    Column("split_ratio", Float, nullable=False, server_default="1"),
    Column("source", String(255), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Batch forecasts get a deterministic id so a rerun of the same day adds nothing.
    Column("request_id", String(128), nullable=False, unique=True),
    Column("ticker", String(32), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("target_date", Date, nullable=False),
    Column("predicted_close", Float, nullable=False),
    Column("lower", Float, nullable=False),
    Column("upper", Float, nullable=False),
    Column("level", Float, nullable=False),
    Column("model_name", String(255), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("model_kind", String(64), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("features", Text),
    # [[level, lower, upper], ...] at every calibrated level, narrowest first (migration 0006).
    Column("intervals", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The close the forecast was made from, on the price basis of its day (migration 0004).
    Column("last_close", Float),
    # Filled by `stockcast actuals` once the next session's bar is stored. The actual is put on
    # the forecast's price basis: ``adjustment`` = the as-of close stored now / ``last_close``
    # (1 unless a split or dividend re-based the history since), actual_close = stored close /
    # adjustment. The naive forecast of the same day is ``last_close``.
    Column("actual_close", Float),
    Column("error", Float),
    Column("actual_date", Date),
    Column("abs_error", Float),
    Column("pct_error", Float),
    Column("covered", Boolean),
    Column("naive_error", Float),
    Column("adjustment", Float),
    Column("evaluated_at", DateTime(timezone=True)),
    # Sessions ahead: ``target_date`` is that many sessions of the ticker's exchange after
    # ``as_of`` (migration 0009; every earlier row is one session ahead).
    Column("horizon", Integer, nullable=False, server_default="1"),
    # Indexes a served forecast enters only at their end (migration 0010): the rows awaiting an
    # actual by id; the scored rows, which a row joins when it is scored, by ticker.
    Index("ix_forecasts_awaiting", "id", sqlite_where=AWAITING, postgresql_where=AWAITING),
    Index("ix_forecasts_scored", "ticker", "as_of", "id", sqlite_where=SCORED, postgresql_where=SCORED),
    Index(
        "ix_forecasts_scored_target",
        "ticker",
        "target_date",
        "id",
        sqlite_where=SCORED,
        postgresql_where=SCORED,
    ),
)

# Every decision of the promotion gate, a forced promotion or a rollback: which version served
# a ticker on any past date, and why.
promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("ticker", String(32), nullable=False),
    Column("action", String(16), nullable=False),  # train, promote, rollback
    Column("promoted", Boolean, nullable=False),
    Column("forced", Boolean, nullable=False, server_default="0"),
    Column("challenger_version", String(64)),
    Column("challenger_spec", String(255)),
    Column("challenger_rmse", Float),
    Column("champion_version", String(64)),
    Column("champion_spec", String(255)),
    Column("champion_rmse", Float),
    Column("naive_rmse", Float),
    Column("window_start", Date),
    Column("window_end", Date),
    Column("reason", Text, nullable=False),
    # Why a training ran: first (no champion yet), scheduled (champion old), drift, manual.
    Column("trigger", String(16)),
    # The gate's evidence (migration 0006): the chosen model's one-sided test against naive and
    # against the champion it replaced, the p-values the decision used (Holm-adjusted when
    # picked among several), the level, the window's length, and every test made, as JSON.
    Column("test_vs_naive", String(32)),
    Column("p_value_vs_naive", Float),
    Column("test_vs_champion", String(32)),
    Column("p_value_vs_champion", Float),
    Column("alpha", Float),
    Column("window_sessions", Integer),
    Column("tests", Text),
    # Who applied the decision and since when it held the ticker's training lease (migration
    # 0007): the decision was planned, gated and applied inside [lease_acquired_at, decided_at].
    Column("decided_by", String(255)),
    Column("lease_acquired_at", DateTime(timezone=True)),
    # The horizon whose champion the decision is about (migration 0009).
    Column("horizon", Integer, nullable=False, server_default="1"),
    Index("ix_promotions_ticker_decided", "ticker", "decided_at"),
)

# Background work started through the API (training), with its outcome. The row is the job's
# record whichever runner runs it (the API's threads or Celery workers): the process running it
# (owner) beats heartbeat_at, and a job whose heartbeat went stale is taken back (migration 0008).
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("tickers", Text, nullable=False),  # JSON list
    Column("status", String(16), nullable=False),  # queued, running, succeeded, failed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("result", Text),  # JSON
    Column("error", Text),
    Column("owner", String(255)),  # the process holding it; None while it waits on the broker
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("tune_trials", Integer, nullable=False, server_default="0"),
    Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
)

# What `stockcast monitor` found for a ticker's champion at one horizon on a day: rolling error
# against its backtest, coverage, direction, data drift and the verdict; one row per ticker,
# horizon and day (horizon in the key since migration 0009).
monitoring = Table(
    "monitoring",
    metadata,
    Column("ticker", String(32), primary_key=True),
    Column("horizon", Integer, primary_key=True, server_default="1"),
    Column("as_of", Date, primary_key=True),
    Column("model_version", String(64)),
    Column("evaluated", Integer, nullable=False),
    Column("rolling_rmse", Float),
    Column("rolling_naive_rmse", Float),
    Column("backtest_rmse", Float),
    Column("rmse_ratio", Float),
    Column("days_above", Integer, nullable=False),
    Column("coverage", Float),
    Column("directional_accuracy", Float),
    Column("mae", Float),
    Column("drift_share", Float),
    Column("drifted_features", Text),  # JSON list
    Column("status", String(16), nullable=False),  # ok, watch, drift, unknown
    Column("reason", Text),
    Column("report_uri", Text),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    # The day of the Evidently reports ``report_uri`` names (migration 0005): reports are
    # written on a cadence, and the days between link the latest; drift figures are the day's.
    Column("report_as_of", Date),
    # Scale-free and probabilistic scores of the last window of forecasts (migration 0006), JSON:
    # rmsse, coverage and msis per level, mean scaled pinball loss, the direction test.
    Column("scores", Text),
)

# One row per ticker while a process trains it or moves its champion alias (migration 0007):
# the holder, a random token and an expiry the holder's heartbeat pushes forward. A row whose
# expiry has passed belongs to nobody; releasing deletes it. See store/leases.py.
training_leases = Table(
    "training_leases",
    metadata,
    Column("ticker", String(32), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("token", String(64), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
