"""promotions: the significance tests behind each decision; forecasts: intervals at every
level; monitoring: scale-free and probabilistic scores

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("test_vs_naive", sa.String(32)),
    ("p_value_vs_naive", sa.Float),
    ("test_vs_champion", sa.String(32)),
    ("p_value_vs_champion", sa.Float),
    ("alpha", sa.Float),
    ("window_sessions", sa.Integer),
    ("tests", sa.Text),
)


def upgrade() -> None:
    # Decisions made before this revision were taken on RMSE alone: their evidence stays empty.
    with op.batch_alter_table("promotions") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind))
    with op.batch_alter_table("forecasts") as batch:
        batch.add_column(sa.Column("intervals", sa.Text))
    with op.batch_alter_table("monitoring") as batch:
        batch.add_column(sa.Column("scores", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("monitoring") as batch:
        batch.drop_column("scores")
    with op.batch_alter_table("forecasts") as batch:
        batch.drop_column("intervals")
    with op.batch_alter_table("promotions") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
