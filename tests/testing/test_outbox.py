"""`envoi.testing`: an app's test suite sees every message its code sends, without Redis or SMTP."""

from __future__ import annotations

from envoi.db.session import Database
from envoi.notifications.inbox import list_notifications
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.testing import Outbox, outbox
from tests.notifications.factories import make_appointment


async def test_outbox_fixture_records_a_flow_rendered_in_its_locale(envoi_outbox: Outbox) -> None:
    envoi = envoi_outbox.envoi
    [result] = await envoi.notifications.send_verification_email(
        email="jane@example.com", first_name="Jane", verification_token="482913", locale="en"
    )
    assert result.mode == "sync" and result.succeeded
    [email] = envoi_outbox.emails_to("jane@example.com")
    assert "482913" in (email.text or "") and "482913" in email.html
    assert envoi_outbox.sms == [] and envoi_outbox.whatsapp == []


async def test_outbox_records_raw_jobs_and_escapes_html(envoi_outbox: Outbox) -> None:
    await envoi_outbox.envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": "Code 1234"}
    )
    [sms] = envoi_outbox.sms
    assert (sms.to, sms.body) == ("+33612345678", "Code 1234")
    await envoi_outbox.envoi.notifications.send_verification_email(
        email="x@example.com", first_name="<b>Eve</b>", verification_token="1"
    )
    [email] = envoi_outbox.emails
    assert "<b>Eve</b>" not in email.html and "&lt;b&gt;Eve&lt;/b&gt;" in email.html
    envoi_outbox.clear()
    assert envoi_outbox.emails == [] and envoi_outbox.sms == []


async def test_outbox_sends_each_message_once_through_the_real_ledger(envoi_outbox: Outbox) -> None:
    appointment = make_appointment()
    for _ in range(2):
        await envoi_outbox.envoi.notifications.send_appointment_confirmation(appointment=appointment)
    assert len(envoi_outbox.emails) == 1
    [email] = envoi_outbox.emails
    assert [a.filename for a in email.attachments] == ["invitation.ics"]


async def test_outbox_keeps_in_app_notifications_in_its_database() -> None:
    async with outbox(default_locale="en") as box:
        await box.envoi.notifications.create_inapp_notification(user_id="u1", title="Hi", message="Hello")
        db: Database = box.envoi.db
        async with db.session() as session:
            page = await list_notifications(session, user_id="u1", limit=10)
        assert [row.title for row in page.items] == ["Hi"]
