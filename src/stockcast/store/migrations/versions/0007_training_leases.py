"""training_leases: one trainer per ticker across processes and machines; promotions: who
applied each decision and since when it held the ticker's lease

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_leases",
        sa.Column("ticker", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Decisions made before this revision were taken without a lease: both stay empty.
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("decided_by", sa.String(255)))
        batch.add_column(sa.Column("lease_acquired_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("lease_acquired_at")
        batch.drop_column("decided_by")
    op.drop_table("training_leases")
