"""The in-app inbox on the test database (SQLite, or PostgreSQL with TEST_DATABASE_URL): two users, no crossing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from envoi.db.models import Notification, NotificationStatus
from envoi.db.types import new_id
from envoi.notifications.inbox import list_notifications, mark_all_read, mark_read, unread_count
from envoi.runtime import Envoi


async def seed(envoi: Envoi, user_id: str, count: int) -> list[str]:
    """`count` notifications for the user, oldest first; returns their ids."""
    ids = [new_id() for _ in range(count)]
    ids.sort()  # ULIDs made within one millisecond are not ordered by their random part
    async with envoi.db.session() as session:
        session.add_all(
            Notification(
                id=notification_id,
                user_id=user_id,
                title=f"{user_id} #{n}",
                message="hello",
                sent_at=datetime.now(UTC),
            )
            for n, notification_id in enumerate(ids)
        )
    return ids


async def test_pages_are_newest_first_and_cover_everything_once(envoi: Envoi) -> None:
    alice = await seed(envoi, "alice", 7)
    await seed(envoi, "bob", 3)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        async with envoi.db.session() as session:
            page = await list_notifications(session, user_id="alice", limit=3, cursor=cursor)
        seen += [n.id for n in page.items]
        pages += 1
        assert all(n.user_id == "alice" for n in page.items)
        if page.next_cursor is None:
            break
        assert page.next_cursor not in alice, "the cursor is opaque, not a raw id"
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(alice))


async def test_exact_multiple_of_the_page_size_ends_without_an_empty_page(envoi: Envoi) -> None:
    await seed(envoi, "alice", 4)
    async with envoi.db.session() as session:
        first = await list_notifications(session, user_id="alice", limit=2)
        assert first.next_cursor is not None
        second = await list_notifications(session, user_id="alice", limit=2, cursor=first.next_cursor)
        assert len(second.items) == 2 and second.next_cursor is None


async def test_unread_count_and_marking_never_cross_users(envoi: Envoi) -> None:
    alice = await seed(envoi, "alice", 3)
    bob = await seed(envoi, "bob", 2)
    async with envoi.db.session() as session:
        assert await unread_count(session, user_id="alice") == 3
        assert await unread_count(session, user_id="bob") == 2
        assert await mark_read(session, user_id="alice", notification_id=bob[0]) is False
        assert (
            await mark_read(session, user_id="alice", notification_id="01NOSUCHID0000000000000000") is False
        )
        assert await mark_read(session, user_id="alice", notification_id=alice[1]) is True
        assert await mark_read(session, user_id="alice", notification_id=alice[1]) is True  # idempotent
    async with envoi.db.session() as session:
        assert await unread_count(session, user_id="alice") == 2
        assert await unread_count(session, user_id="bob") == 2
        unread = await list_notifications(session, user_id="alice", unread_only=True)
        assert [n.id for n in unread.items] == [alice[2], alice[0]]
        read = await session.get(Notification, alice[1])
        assert read is not None and read.read_at is not None and read.status == NotificationStatus.READ

        assert await mark_all_read(session, user_id="alice") == 2
        assert await mark_all_read(session, user_id="alice") == 0
    async with envoi.db.session() as session:
        assert await unread_count(session, user_id="alice") == 0
        assert await unread_count(session, user_id="bob") == 2
        assert (await list_notifications(session, user_id="alice", unread_only=True)).items == []
        everything = await list_notifications(session, user_id="alice")
        assert len(everything.items) == 3 and everything.next_cursor is None


async def test_an_empty_inbox(envoi: Envoi) -> None:
    async with envoi.db.session() as session:
        page = await list_notifications(session, user_id="nobody")
        assert (list(page.items), page.next_cursor) == ([], None)
        assert await unread_count(session, user_id="nobody") == 0
        assert await mark_all_read(session, user_id="nobody") == 0


@pytest.mark.parametrize("cursor", ["not base64 !", "Zm9v", ""])
async def test_a_bad_cursor_or_limit_is_a_value_error(envoi: Envoi, cursor: str) -> None:
    async with envoi.db.session() as session:
        with pytest.raises(ValueError, match="cursor"):
            await list_notifications(session, user_id="alice", cursor=cursor)
        with pytest.raises(ValueError, match="limit"):
            await list_notifications(session, user_id="alice", limit=0)
        with pytest.raises(ValueError, match="limit"):
            await list_notifications(session, user_id="alice", limit=101)
