"""monitoring: the as-of date of the Evidently reports a verdict used

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitoring") as batch:
        batch.add_column(sa.Column("report_as_of", sa.Date))
    # Rows written before this revision made their report on their own day when they have one.
    op.execute("UPDATE monitoring SET report_as_of = as_of WHERE report_uri IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("monitoring") as batch:
        batch.drop_column("report_as_of")
