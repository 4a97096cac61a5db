"""add failed_jobs: the dead-letter queue

Revision ID: 20260115000000
Revises:
Create Date: 2026-01-15 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20260115000000"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "failed_jobs",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=True),
        sa.Column("job_data", sa.JSON(), nullable=False),
        sa.Column("job_options", sa.JSON(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("stacktrace", sa.JSON(), nullable=False),
        sa.Column("attempts_made", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("retried_job_id", sa.String(255), nullable=True),
        sa.Column("finished_on", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("queue_name", "job_id", "finished_on", name="uq_failed_jobs_failure"),
    )
    op.create_index("ix_failed_jobs_queue_name", "failed_jobs", ["queue_name"])
    op.create_index("ix_failed_jobs_job_name", "failed_jobs", ["job_name"])
    op.create_index("ix_failed_jobs_created_at", "failed_jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_failed_jobs_created_at", table_name="failed_jobs")
    op.drop_index("ix_failed_jobs_job_name", table_name="failed_jobs")
    op.drop_index("ix_failed_jobs_queue_name", table_name="failed_jobs")
    op.drop_table("failed_jobs")
