"""in-app rows as the original system's: type IN_APP, SQL NULL for absent metadata

envoi wrote `INAPP` in `notifications.type`; the original system's enum value is `IN_APP`. And
SQLAlchemy's JSON type wrote the JSON text `null` for absent metadata, which `metadata IS NULL` does not
find; the model now writes SQL NULL (`none_as_null`) and this revision fixes the rows already there.

The statements are built from a `Table`, not written as text, so that they follow DATABASE_SCHEMA's
translate map like the rest of the chain.

Revision ID: 20261201000500
Revises: 20260118000000
Create Date: 2026-12-01 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201000500"
down_revision: str | None = "20261201000300"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

notifications = sa.Table(
    "notifications",
    sa.MetaData(),
    sa.Column("type", sa.String(50)),
    sa.Column("metadata", sa.JSON()),
)


def _retype(old: str, new: str) -> None:
    op.execute(notifications.update().where(notifications.c.type == old).values(type=new))


def upgrade() -> None:
    _retype("INAPP", "IN_APP")
    # The JSON text `null` reads `null` once cast to text, on PostgreSQL (json) as on SQLite (text).
    op.execute(
        notifications.update()
        .where(sa.cast(notifications.c.metadata, sa.Text) == "null")
        .values(metadata=sa.null())
    )


def downgrade() -> None:
    # SQL NULL metadata stays: the older code read it as None, exactly as it read the JSON `null`.
    _retype("IN_APP", "INAPP")
