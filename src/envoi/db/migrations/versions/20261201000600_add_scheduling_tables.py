"""add idempotency_keys and scheduled_messages: promises that hold while Redis is down

`idempotency_keys` remembers an HTTP Idempotency-Key's first job (it lived in Redis, and was forgotten
while Redis was down); `scheduled_messages` records every delayed message and its cancellation or
replacement, checked by the handler before it sends.

Revision ID: 20261201000600
Revises: 20260118000000
Create Date: 2026-12-01 00:04:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201000600"
down_revision: str | None = "20261201000500"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "scheduled_messages",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("group_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scheduled_messages_group_key_status", "scheduled_messages", ["group_key", "status"])


def downgrade() -> None:
    op.drop_index("ix_scheduled_messages_group_key_status", table_name="scheduled_messages")
    op.drop_table("scheduled_messages")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
