"""`Database.connection()`: single statements in autocommit, on the same schema and with the same
masking of values as the sessions."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from envoi.config import Settings
from envoi.db.models import MessageDelivery
from envoi.db.session import Database

ROW = {"id": "01JCONNECTION0000000000000", "idempotency_key": "k1", "channel": "email", "provider": "smtp",
       "recipient": "jane@example.com", "status": "PENDING", "attempts": 0}  # fmt: skip


async def test_a_statement_is_committed_when_it_returns(settings: Settings) -> None:
    """No COMMIT is sent: the row is there for another connection as soon as the statement returned,
    whatever the block does next."""
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        with pytest.raises(RuntimeError):
            async with db.connection(bounded=True) as connection:
                await connection.execute(insert(MessageDelivery).values(ROW))
                raise RuntimeError("after the statement")
        async with db.session() as session:
            assert await session.scalar(select(MessageDelivery.recipient)) == "jane@example.com"
    finally:
        await db.dispose()


async def test_its_errors_hide_the_values(settings: Settings) -> None:
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        async with db.connection() as connection:
            await connection.execute(insert(MessageDelivery).values(ROW))
        with pytest.raises(IntegrityError) as caught:
            async with db.connection() as connection:
                await connection.execute(
                    insert(MessageDelivery).values({**ROW, "id": "01JCONNECTION0000000000001"})
                )
        assert "jane@example.com" not in str(caught.value)
    finally:
        await db.dispose()
