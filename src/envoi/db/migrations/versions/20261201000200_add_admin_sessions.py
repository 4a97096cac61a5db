"""add admin_sessions and admin_login_attempts: server-side admin page sessions, and the login throttle

A session is a random cookie value whose SHA-256 is the row's key; logout revokes the row. Sign-in
attempts are rows too, so that the throttle (ADMIN_LOGIN_MAX_ATTEMPTS per ADMIN_LOGIN_WINDOW_S per
client) holds across API processes.

Revision ID: 20261201000200
Revises: 20260118000000
Create Date: 2026-12-01 00:02:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201000200"
down_revision: str | None = "20260118000000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("token_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])
    op.create_table(
        "admin_login_attempts",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_admin_login_attempts_client_attempted_at", "admin_login_attempts", ["client", "attempted_at"]
    )
    op.create_index("ix_admin_login_attempts_attempted_at", "admin_login_attempts", ["attempted_at"])


def downgrade() -> None:
    op.drop_index("ix_admin_login_attempts_attempted_at", table_name="admin_login_attempts")
    op.drop_index("ix_admin_login_attempts_client_attempted_at", table_name="admin_login_attempts")
    op.drop_table("admin_login_attempts")
    op.drop_index("ix_admin_sessions_expires_at", table_name="admin_sessions")
    op.drop_table("admin_sessions")
