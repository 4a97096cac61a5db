"""A database error's message never carries the statement's values (recipients, bodies) into logs."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from envoi.config import Settings
from envoi.db.models import MessageDelivery
from envoi.db.session import Database


async def test_integrity_error_hides_the_recipient(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        row = {
            "idempotency_key": "k1",
            "channel": "email",
            "provider": "smtp",
            "recipient": "jane@example.com",
        }
        async with db.session() as session:
            session.add(MessageDelivery(**row))
        with pytest.raises(IntegrityError) as caught:
            async with db.session() as session:
                session.add(MessageDelivery(**row))
        assert "jane@example.com" not in str(caught.value)
        assert "hidden" in str(caught.value).lower()
    finally:
        await db.dispose()
