"""horizons: forecasts, decisions and monitoring verdicts carry the number of sessions ahead
they are about (1 for every row before this revision, which was the only horizon then)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MONITORING_COLUMNS = [
    "ticker",
    "horizon",
    "as_of",
    "model_version",
    "evaluated",
    "rolling_rmse",
    "rolling_naive_rmse",
    "backtest_rmse",
    "rmse_ratio",
    "days_above",
    "coverage",
    "directional_accuracy",
    "mae",
    "drift_share",
    "drifted_features",
    "status",
    "reason",
    "report_uri",
    "computed_at",
    "report_as_of",
    "scores",
]


def _monitoring_table(name: str, with_horizon: bool) -> None:
    keys: list[sa.Column[object]] = [sa.Column("ticker", sa.String(32), primary_key=True)]
    if with_horizon:
        keys.append(sa.Column("horizon", sa.Integer, primary_key=True, server_default="1"))
    op.create_table(
        name,
        *keys,
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("model_version", sa.String(64)),
        sa.Column("evaluated", sa.Integer, nullable=False),
        sa.Column("rolling_rmse", sa.Float),
        sa.Column("rolling_naive_rmse", sa.Float),
        sa.Column("backtest_rmse", sa.Float),
        sa.Column("rmse_ratio", sa.Float),
        sa.Column("days_above", sa.Integer, nullable=False),
        sa.Column("coverage", sa.Float),
        sa.Column("directional_accuracy", sa.Float),
        sa.Column("mae", sa.Float),
        sa.Column("drift_share", sa.Float),
        sa.Column("drifted_features", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("report_uri", sa.Text),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_as_of", sa.Date),
        sa.Column("scores", sa.Text),
    )


def _copy_monitoring(with_horizon: bool) -> None:
    """Rebuild ``monitoring`` with or without ``horizon`` in its key (a key changes the same
    way on SQLite and PostgreSQL only by copying the table). Upgraded rows are one session
    ahead; a downgrade keeps those only."""
    if with_horizon:
        columns = MONITORING_COLUMNS
        selected = ", ".join("1" if name == "horizon" else name for name in columns)
        where = ""
    else:
        columns = [name for name in MONITORING_COLUMNS if name != "horizon"]
        selected = ", ".join(columns)
        where = " WHERE horizon = 1"
    _monitoring_table("monitoring_next", with_horizon)
    # Built from the constant column list above, nothing from outside.
    copy = f"INSERT INTO monitoring_next ({', '.join(columns)}) SELECT {selected} FROM monitoring{where}"  # noqa: S608  # nosec B608: constant names
    op.execute(copy)
    op.drop_table("monitoring")
    op.rename_table("monitoring_next", "monitoring")
    if op.get_bind().dialect.name == "postgresql":
        # The key's index keeps the name it was made with: it gets the one a table named
        # monitoring is given, as if created so (PostgreSQL would otherwise number the next
        # rebuild's, monitoring_next_pkey1).
        op.execute("ALTER INDEX IF EXISTS monitoring_next_pkey RENAME TO monitoring_pkey")


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.add_column(sa.Column("horizon", sa.Integer, nullable=False, server_default="1"))
        batch.create_index("ix_forecasts_ticker_horizon_asof", ["ticker", "horizon", "as_of"])
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("horizon", sa.Integer, nullable=False, server_default="1"))
    _copy_monitoring(with_horizon=True)


def downgrade() -> None:
    # Rows of longer horizons have no place in the older schema: they go.
    op.execute("DELETE FROM forecasts WHERE horizon <> 1")
    op.execute("DELETE FROM promotions WHERE horizon <> 1")
    _copy_monitoring(with_horizon=False)
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("horizon")
    with op.batch_alter_table("forecasts") as batch:
        batch.drop_index("ix_forecasts_ticker_horizon_asof")
        batch.drop_column("horizon")
