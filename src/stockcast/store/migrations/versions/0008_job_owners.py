"""jobs: who runs each job, its last heartbeat, its attempts and its request, so a job whose
process died is taken back (retried or failed) instead of staying ``running``

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A job still queued or running from before this revision ran in an API process that is
    # being replaced by this upgrade, and has no owner or heartbeat to be taken back by: it is
    # failed with the reason, never left running.
    op.execute(
        "UPDATE jobs SET status = 'failed', error = 'interrupted by the upgrade to job heartbeats "
        "(migration 0008): post it again' WHERE status IN ('queued', 'running')"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(255)))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("tune_trials", sa.Integer, nullable=False, server_default="0"))
        batch.create_index("ix_jobs_status_heartbeat", ["status", "heartbeat_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_heartbeat")
        batch.drop_column("tune_trials")
        batch.drop_column("attempts")
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
