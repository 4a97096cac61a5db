"""add failed_jobs page indexes: filtered dead-letter pages, newest first

`envoi dlq list --queue/--job-name/--status` and the admin page read `WHERE <column> = ? ORDER BY id
DESC LIMIT n` (ids are ULIDs, sorted by creation time). A (column, id) index answers that with one range
scan; the single-column indexes of 20260115000000 stay (equality filters, counts).

Revision ID: 20260118000000
Revises: 20260117000000
Create Date: 2026-01-18 00:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20260118000000"
down_revision: str | None = "20260117000000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_failed_jobs_queue_name_id", "failed_jobs", ["queue_name", "id"])
    op.create_index("ix_failed_jobs_job_name_id", "failed_jobs", ["job_name", "id"])
    op.create_index("ix_failed_jobs_status_id", "failed_jobs", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_failed_jobs_status_id", table_name="failed_jobs")
    op.drop_index("ix_failed_jobs_job_name_id", table_name="failed_jobs")
    op.drop_index("ix_failed_jobs_queue_name_id", table_name="failed_jobs")
