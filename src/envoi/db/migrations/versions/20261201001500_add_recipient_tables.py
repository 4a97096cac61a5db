"""add recipient_preferences, recipient_settings and inbox_digests: what recipients decide

`recipient_preferences` holds opt-outs per recipient, channel and category (the API, the CLI, the
one-click unsubscribe); `recipient_settings` a recipient's quiet hours, time zone and digest address;
`inbox_digests` the in-app digest armed for a user. `message_deliveries.status` gains SUPPRESSED (a
string column: no change needed).

Revision ID: 20261201001500
Revises: 20261201000600
Create Date: 2026-12-01 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201001500"
down_revision: str | None = "20261201000600"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recipient_preferences",
        sa.Column("recipient", sa.String(320), primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("category", sa.String(20), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "recipient_settings",
        sa.Column("recipient", sa.String(320), primary_key=True),
        sa.Column("quiet_hours", sa.String(11), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "inbox_digests",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("covered_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbox_digests")
    op.drop_table("recipient_settings")
    op.drop_table("recipient_preferences")
