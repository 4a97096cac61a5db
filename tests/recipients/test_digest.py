"""The in-app digest (DIGEST_WINDOW): notifications still unread when the window ends make one email
listing them all, not one each; read before the window ends, they make none."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from envoi.db.models import InboxDigest
from envoi.queue import NOTIFICATIONS_QUEUE
from tests.api.conftest import Api
from tests.fixtures.smtp import SmtpSink
from tests.helpers import bull_queue, eventually

USER = "user_42"
ADDRESS = "lea@example.com"


async def _notify(api: Api, count: int) -> None:
    for number in range(1, count + 1):
        body = {"title": f"Lead number {number}", "message": f"Lead {number} booked a call"}
        answer = await api.client.post(f"/v1/users/{USER}/notifications", json=body)
        assert answer.status_code == 202, answer.text

    async def created() -> bool:
        answer = await api.client.get(f"/v1/users/{USER}/notifications/unread-count")
        return bool(answer.json()["count"] == count)

    await eventually(created, message=f"{count} notifications in the inbox")


async def _disarmed(api: Api) -> bool:
    async with api.envoi.db.session() as session:
        row = await session.get(InboxDigest, USER)
        return row is not None and row.due_at is None


async def _idle(api: Api) -> bool:
    counts = await bull_queue(api.envoi.queue, NOTIFICATIONS_QUEUE).getJobCounts(
        "waiting", "delayed", "active"
    )
    return not any(counts.values())


async def test_five_unread_notifications_make_one_email_listing_five(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api(digest_window="2s")
    answer = await api.client.put(f"/v1/recipients/{USER}/preferences", json={"email": ADDRESS})
    assert answer.json()["email"] == ADDRESS
    await _notify(api, 5)
    [digest] = await eventually(lambda: smtp_sink.messages, timeout=15, message="the digest")
    assert digest.rcpt_tos == [ADDRESS]
    assert digest.message["Subject"] == "5 notifications non lues sur envoi"
    text = digest.text or ""
    # The worker creates them concurrently: their order is the order they were created in.
    assert sorted(line for line in text.splitlines() if line.startswith("- ")) == [
        f"- Lead number {n} : Lead {n} booked a call" for n in range(1, 6)
    ]
    assert (digest.html or "").count("<li") == 5
    await eventually(lambda: _idle(api), message="no job left")
    assert len(smtp_sink.messages) == 1, "one email, not one per notification"


async def test_notifications_read_within_the_window_cancel_the_digest(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api(digest_window="3s")
    await api.envoi.preferences.update(USER, email=ADDRESS)
    await _notify(api, 2)
    read = await api.client.post(f"/v1/users/{USER}/notifications/read-all")
    assert read.json()["count"] == 2
    await eventually(lambda: _disarmed(api), timeout=15, message="the digest job ran")
    await eventually(lambda: _idle(api), message="no job left")
    assert smtp_sink.messages == []


async def test_no_digest_address_or_no_window_arms_nothing(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api(digest_window="1s")
    await _notify(api, 1)  # user_42 has no digest address
    await eventually(lambda: _idle(api), message="no job left")
    async with api.envoi.db.session() as session:
        assert await session.get(InboxDigest, USER) is None
    assert smtp_sink.messages == []
