"""prices and forecasts

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prices",
        sa.Column("ticker", sa.String(32), primary_key=True),
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("open", sa.Float, nullable=False),
        sa.Column("high", sa.Float, nullable=False),
        sa.Column("low", sa.Float, nullable=False),
        sa.Column("close", sa.Float, nullable=False),
        sa.Column("adj_close", sa.Float),
        sa.Column("volume", sa.Float),
        sa.Column("dividends", sa.Float, nullable=False, server_default="0"),
        sa.Column("split_ratio", sa.Float, nullable=False, server_default="1"),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "forecasts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("target_date", sa.Date, nullable=False),
        sa.Column("predicted_close", sa.Float, nullable=False),
        sa.Column("lower", sa.Float, nullable=False),
        sa.Column("upper", sa.Float, nullable=False),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("model_kind", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("features", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actual_close", sa.Float),
        sa.Column("error", sa.Float),
    )
    op.create_index("ix_forecasts_ticker_target", "forecasts", ["ticker", "target_date"])


def downgrade() -> None:
    op.drop_index("ix_forecasts_ticker_target", table_name="forecasts")
    op.drop_table("forecasts")
    op.drop_table("prices")
