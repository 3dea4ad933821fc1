"""promotion history

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("challenger_version", sa.String(64)),
        sa.Column("challenger_spec", sa.String(255)),
        sa.Column("challenger_rmse", sa.Float),
        sa.Column("champion_version", sa.String(64)),
        sa.Column("champion_spec", sa.String(255)),
        sa.Column("champion_rmse", sa.Float),
        sa.Column("naive_rmse", sa.Float),
        sa.Column("window_start", sa.Date),
        sa.Column("window_end", sa.Date),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_promotions_ticker_decided", "promotions", ["ticker", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_promotions_ticker_decided", table_name="promotions")
    op.drop_table("promotions")
