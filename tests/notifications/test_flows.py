"""Each flow end to end: a real worker takes the jobs from Redis and delivers them to the SMTP sink and
the Twilio stand-in; then the same flows with the queue disabled and with Redis down, delivered inline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from bullmq import Job
from icalendar import Calendar

from envoi.config import Settings
from envoi.db.models import Notification
from envoi.embedded_redis import free_port
from envoi.notifications.inbox import list_notifications
from envoi.notifications.service import NotificationsService
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.fixtures.delivery import SMS_FROM, WHATSAPP_FROM
from tests.fixtures.smtp import ReceivedMessage, SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import bull_queue, eventually
from tests.notifications.factories import LEAD_EMAIL, LEAD_PHONE, make_appointment

T = TypeVar("T")
SettingsFactory = Callable[..., Settings]
StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def queued(
    delivery_settings: Settings, make_envoi: Callable[..., Envoi], start_worker: StartWorker
) -> NotificationsService:
    """The service over a real queue, with a worker running."""
    envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    return (envoi).notifications


def received(items: list[T], count: int) -> list[T]:
    """`items` once there are `count` of them, else an empty list (falsy: keep waiting)."""
    return items if len(items) >= count else []


async def one_message(smtp_sink: SmtpSink) -> ReceivedMessage:
    [message] = await eventually(lambda: smtp_sink.messages, message="an email in the SMTP sink")
    return message


@pytest.mark.parametrize(
    ("locale", "subject", "greeting"),
    [
        ("fr", "envoi : vérifiez votre adresse e-mail", "Bienvenue sur envoi, Léa !"),
        ("en", "envoi: verify your email address", "Welcome to envoi, Léa!"),
    ],
)
async def test_verification_email_is_delivered(
    queued: NotificationsService, smtp_sink: SmtpSink, locale: str, subject: str, greeting: str
) -> None:
    [result] = await queued.send_verification_email(
        email=LEAD_EMAIL, first_name="Léa", verification_token="482913", locale=locale
    )
    assert result.mode == "queued" and result.job_id.startswith("verification-")
    assert LEAD_EMAIL not in result.job_id and "482913" not in result.job_id
    message = await one_message(smtp_sink)
    assert message.rcpt_tos == [LEAD_EMAIL]
    assert message.message["Subject"] == subject
    assert message.text is not None and greeting in message.text and "482913" in message.text
    assert message.html is not None and "482913" in message.html


async def test_user_supplied_text_is_escaped_in_the_delivered_html(
    queued: NotificationsService, smtp_sink: SmtpSink
) -> None:
    await queued.send_verification_email(
        email=LEAD_EMAIL, first_name="<script>alert(1)</script>", verification_token="1", locale="en"
    )
    message = await one_message(smtp_sink)
    assert message.html is not None and "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html


async def test_invitation_is_delivered(queued: NotificationsService, smtp_sink: SmtpSink) -> None:
    await queued.send_invitation_email(
        email="sam@example.com",
        organization_name="Acme",
        inviter_name="Jane Doe",
        invitation_token="tok/123",
        role="closer",
        locale="en",
    )
    invitation = await one_message(smtp_sink)
    assert invitation.rcpt_tos == ["sam@example.com"]
    assert invitation.message["Subject"] == "Join Acme on envoi"
    assert invitation.text is not None
    assert "Jane Doe invited you to join Acme on envoi as a closer." in invitation.text
    assert "http://localhost:3000/invite/tok%2F123" in invitation.text


async def test_confirmation_sends_email_with_invitation_sms_and_whatsapp(
    queued: NotificationsService, smtp_sink: SmtpSink, twilio_server: TwilioServer
) -> None:
    appointment = make_appointment(starts_in=timedelta(hours=30))
    results = await queued.send_appointment_confirmation(appointment=appointment)
    assert [r.job_name for r in results] == ["SEND_EMAIL", "SEND_SMS", "SEND_WHATSAPP", "SEND_WHATSAPP"]
    assert results[-1].job_id.startswith("followup-apt-1-whatsapp-")

    message = await one_message(smtp_sink)
    assert message.rcpt_tos == [LEAD_EMAIL]
    assert str(message.message["Subject"]).startswith("Rendez-vous confirmé le ")
    assert message.html is not None and "https://meet.example.com/abc-defg" in message.html
    assert message.text is not None and "Jane Doe" in message.text and "45 minutes" in message.text
    [attachment] = message.attachments
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_filename() == "invitation.ics"
    calendar = Calendar.from_ical(attachment.get_content())
    [event] = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == appointment.scheduled_at
    assert str(event["SUMMARY"]) == "Rendez-vous avec Jane Doe"

    sent = await eventually(lambda: received(twilio_server.messages, 2), message="two text messages")
    by_from = {m["From"]: m for m in sent}
    assert by_from[SMS_FROM]["To"] == LEAD_PHONE
    assert "RDV confirmé avec Jane Doe" in by_from[SMS_FROM]["Body"]
    whatsapp = by_from[f"whatsapp:{WHATSAPP_FROM}"]
    assert whatsapp["To"] == f"whatsapp:{LEAD_PHONE}"
    assert whatsapp["Body"].startswith("✅ RDV confirmé avec Jane Doe")

    # The follow-up waits in Redis for 10 minutes instead of a timer in the API process.
    followup = await Job.fromId(bull_queue(queued.queue, NOTIFICATIONS_QUEUE), results[-1].job_id)
    # Due 10 minutes after the confirmation: the delay is counted from its record, a moment earlier.
    assert followup is not None and 598_000 <= followup.delay <= 600_000
    assert "J'ai hâte de vous parler" in followup.data["message"]


async def test_the_video_link_is_in_the_body_and_the_ics_whatever_the_delay(
    queued: NotificationsService, smtp_sink: SmtpSink, twilio_server: TwilioServer
) -> None:
    """One rule (docs/templates.md): an appointment with a visioUrl shows it in every message and in the
    calendar entry, four days ahead as four hours ahead."""
    appointment = make_appointment(starts_in=timedelta(days=4), locale="en")
    await queued.send_appointment_confirmation(appointment=appointment)
    message = await one_message(smtp_sink)
    assert str(message.message["Subject"]).startswith("Appointment confirmed for ")
    assert message.html is not None and 'href="https://meet.example.com/abc-defg"' in message.html
    assert message.text is not None and "Video call: https://meet.example.com/abc-defg" in message.text
    [event] = Calendar.from_ical(message.attachments[0].get_content()).walk("VEVENT")
    assert str(event["LOCATION"]) == "https://meet.example.com/abc-defg"
    assert "Video call: https://meet.example.com/abc-defg" in str(event["DESCRIPTION"])
    sms = await eventually(lambda: received(twilio_server.messages, 2), message="SMS and WhatsApp")
    assert all("https://meet.example.com/abc-defg" in m["Body"] for m in sms)


async def test_a_reminder_due_in_two_seconds_is_delivered(
    queued: NotificationsService, smtp_sink: SmtpSink, twilio_server: TwilioServer
) -> None:
    appointment = make_appointment(starts_in=timedelta(hours=1, seconds=2), locale="en")
    replacement = await queued.schedule_appointment_reminders(appointment=appointment)
    assert [(s.slot.kind, s.result.mode) for s in replacement.scheduled] == [
        ("reminder-hour", "queued"),
        ("reminder-hour-sms", "queued"),
    ]
    assert smtp_sink.messages == []
    message = await one_message(smtp_sink)
    assert message.message["Subject"] == "Your appointment starts in 1 hour"
    [sms] = await eventually(lambda: twilio_server.messages, message="the reminder SMS")
    assert sms["To"] == LEAD_PHONE and "starts in 1 hour" in sms["Body"]


async def test_inapp_notification_reaches_the_inbox(
    queued: NotificationsService, delivery_settings: Settings, make_envoi: Callable[..., Envoi]
) -> None:
    await queued.create_inapp_notification(
        user_id="user-1", title="Nouveau lead", message="Léa a réservé", metadata={"appointmentId": "apt-1"}
    )
    reader = make_envoi(delivery_settings)

    found: list[Notification] = []

    async def arrived() -> bool:
        async with reader.db.session() as session:
            found[:] = (await list_notifications(session, user_id="user-1")).items
        return bool(found)

    # mypy cannot solve `T | Awaitable[T]` against a coroutine function (tests/helpers.py's signature).
    await eventually(arrived, message="the notification in the inbox")  # type: ignore[arg-type]
    [notification] = found
    assert (notification.title, notification.message) == ("Nouveau lead", "Léa a réservé")
    assert notification.meta is not None and notification.meta["appointmentId"] == "apt-1"


# --- without a queue --------------------------------------------------------------------------------


@pytest.fixture(params=["queue disabled", "redis down"])
def inline_settings(request: pytest.FixtureRequest, make_delivery_settings: SettingsFactory) -> Settings:
    if request.param == "queue disabled":
        return make_delivery_settings(queue_enabled=False)
    return make_delivery_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")


async def test_flows_deliver_inline_without_a_queue(
    inline_settings: Settings,
    make_envoi: Callable[..., Envoi],
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
) -> None:
    service = (make_envoi(inline_settings)).notifications
    [verification] = await service.send_verification_email(
        email=LEAD_EMAIL, first_name="Léa", verification_token="777111"
    )
    assert (verification.mode, verification.succeeded) == ("sync", True)
    # Delivered before the call returned: nothing to wait for.
    [message] = smtp_sink.messages
    assert message.message["Subject"] == "envoi : vérifiez votre adresse e-mail"

    results = await service.send_appointment_confirmation(appointment=make_appointment())
    outcome = [(r.job_name, r.succeeded) for r in results]
    # The delayed follow-up cannot run inline: it goes to the dead letters, to be retried later.
    assert outcome == [
        ("SEND_EMAIL", True),
        ("SEND_SMS", True),
        ("SEND_WHATSAPP", True),
        ("SEND_WHATSAPP", False),
    ]
    assert len(smtp_sink.messages) == 2 and len(twilio_server.messages) == 2

    [again] = await service.send_verification_email(
        email=LEAD_EMAIL, first_name="Léa", verification_token="777111"
    )
    assert again.succeeded and again.result["status"] == "skipped", "the ledger sends one message once"
    assert len(smtp_sink.messages) == 2


async def test_inapp_inline_without_a_queue(
    inline_settings: Settings, make_envoi: Callable[..., Envoi]
) -> None:
    envoi = make_envoi(inline_settings)
    [result] = await (envoi).notifications.create_inapp_notification(
        user_id="user-2", title="t", message="m", metadata={"idempotencyKey": "inapp:demo:1"}
    )
    assert (result.mode, result.succeeded) == ("sync", True)
    async with envoi.db.session() as session:
        page = await list_notifications(session, user_id="user-2")
    assert [n.title for n in page.items] == ["t"]
