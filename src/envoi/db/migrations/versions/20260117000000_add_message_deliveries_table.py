"""add message_deliveries: the delivery ledger

Revision ID: 20260117000000
Revises: 20260116000000
Create Date: 2026-01-17 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20260117000000"
down_revision: str | None = "20260116000000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_deliveries",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("template_key", sa.String(100), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("error_code", sa.String(50), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_message_deliveries_provider_message_id", "message_deliveries", ["provider_message_id"]
    )
    op.create_index("ix_message_deliveries_status", "message_deliveries", ["status"])


def downgrade() -> None:
    op.drop_index("ix_message_deliveries_status", table_name="message_deliveries")
    op.drop_index("ix_message_deliveries_provider_message_id", table_name="message_deliveries")
    op.drop_table("message_deliveries")
