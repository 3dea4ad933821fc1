"""actuals on forecasts, monitoring history, what triggered each training

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_FORECAST_COLUMNS = [
    sa.Column("last_close", sa.Float),
    sa.Column("actual_date", sa.Date),
    sa.Column("abs_error", sa.Float),
    sa.Column("pct_error", sa.Float),
    sa.Column("covered", sa.Boolean),
    sa.Column("naive_error", sa.Float),
    sa.Column("adjustment", sa.Float),
    sa.Column("evaluated_at", sa.DateTime(timezone=True)),
]


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        for column in NEW_FORECAST_COLUMNS:
            batch.add_column(column)
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("trigger", sa.String(16)))
    op.create_index("ix_forecasts_open", "forecasts", ["ticker", "actual_close"])
    op.create_table(
        "monitoring",
        sa.Column("ticker", sa.String(32), primary_key=True),
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
    )


def downgrade() -> None:
    op.drop_table("monitoring")
    op.drop_index("ix_forecasts_open", "forecasts")
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("trigger")
    with op.batch_alter_table("forecasts") as batch:
        for column in reversed(NEW_FORECAST_COLUMNS):
            batch.drop_column(column.name)
