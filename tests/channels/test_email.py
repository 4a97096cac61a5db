"""Email through a real worker and the SMTP sink: retries on 4xx, none on 5xx, at RCPT and at DATA;
the Message-ID; attachments; the console provider; inline mode."""

from __future__ import annotations

import base64
from typing import Any

import aiosmtplib
import pytest

from envoi.channels.base import ChannelName, OutgoingEmail
from envoi.channels.email_smtp import SmtpEmailChannel, smtp_error
from envoi.channels.mime import message_id
from envoi.config import Settings
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import (
    DIRECT_KEY,
    EMAIL_TO,
    Recorder,
    context,
    delivery,
    email_data,
    job_delivery,
)
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, job_state


async def started(make_envoi: Any, start_worker: Any, settings: Settings) -> tuple[Envoi, Recorder]:
    envoi: Envoi = make_envoi(settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    return envoi, recorder


async def test_email_is_delivered_with_text_html_and_stable_message_id(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    envoi, _ = await started(make_envoi, start_worker, delivery_settings)
    data = email_data(
        metadata={"idempotencyKey": "confirm-a1", "templateKey": "appointment_confirmation"},
        attachments=[
            {
                "filename": "rdv.ics",
                "contentType": "text/calendar",
                "content": base64.b64encode(b"BEGIN").decode(),
            }
        ],
    )
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
    [received] = await eventually(lambda: smtp_sink.messages, message="email received")
    assert received.rcpt_tos == [EMAIL_TO]
    assert received.mail_from == "no-reply@envoi.test"
    assert received.message["Subject"] == "Votre rendez-vous"
    assert received.message["Message-ID"] == message_id("confirm-a1")
    assert (received.text or "").strip() == "Bonjour Jeanne"
    assert "<p>Bonjour Jeanne</p>" in (received.html or "")
    [attachment] = received.attachments
    assert (attachment.get_filename(), attachment.get_content_type()) == ("rdv.ics", "text/calendar")
    row = await eventually(lambda: _sent(envoi, "", key="confirm-a1"), message="ledger row SENT")
    assert (row.channel, row.provider, row.template_key) == ("email", "smtp", "appointment_confirmation")
    assert row.provider_message_id == message_id("confirm-a1")


async def _sent(envoi: Envoi, job_id: str, *, key: str | None = None) -> Any:
    row = await (delivery(envoi, key) if key else job_delivery(envoi, job_id))
    return row if row is not None and row.status == "SENT" else None


def test_message_id_is_stable_per_key() -> None:
    assert message_id("k") == message_id("k")
    assert message_id("k") != message_id("k2")
    assert message_id("k").endswith("@envoi>") and len(message_id("k")) == len("<@envoi>") + 32


@pytest.mark.parametrize("stage", ["rcpt", "data", "mail"])
async def test_4xx_is_retried_until_delivered(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink, stage: Any
) -> None:
    envoi, recorder = await started(make_envoi, start_worker, delivery_settings)
    smtp_sink.fail_next(code=451, times=2, stage=stage)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    await eventually(lambda: smtp_sink.messages, message="delivered on the third attempt")
    assert smtp_sink.refusals == [(stage, 451), (stage, 451)]
    assert len(smtp_sink.messages) == 1
    row = await eventually(lambda: _sent(envoi, result.job_id), message="SENT")
    assert row.attempts == 3 and row.error_code is None
    assert recorder.failures == []


@pytest.mark.parametrize(("stage", "code"), [("rcpt", 550), ("data", 554), ("mail", 553)])
async def test_5xx_fails_after_one_attempt(
    delivery_settings: Settings,
    make_envoi: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    stage: Any,
    code: int,
) -> None:
    envoi, recorder = await started(make_envoi, start_worker, delivery_settings)
    smtp_sink.fail_next(code=code, times=5, stage=stage)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    [failure] = await eventually(lambda: recorder.failures, message="final failure")
    assert failure.attempts_made == 1
    assert str(code) in failure.error_message
    assert smtp_sink.refusals == [(stage, code)]
    assert smtp_sink.messages == []
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id) == "failed"
    row = await job_delivery(envoi, result.job_id)
    assert row is not None and (row.status, row.error_code, row.attempts) == ("FAILED", str(code), 1)


async def test_unreachable_server_is_transient(make_delivery_settings: Any, make_envoi: Any) -> None:
    from envoi.embedded_redis import free_port

    envoi: Envoi = make_envoi(make_delivery_settings(smtp_port=free_port()))
    with pytest.raises(TransientDeliveryError) as raised:
        await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    assert raised.value.code == "CONNECTION"
    row = await delivery(envoi, DIRECT_KEY)
    assert row is not None and (row.status, row.error_code) == ("FAILED", "CONNECTION")


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (aiosmtplib.SMTPRecipientRefused(550, "no such user", EMAIL_TO), "p", "550"),
        (aiosmtplib.SMTPRecipientRefused(452, "mailbox full", EMAIL_TO), "t", "452"),
        (aiosmtplib.SMTPSenderRefused(421, "busy", "a@b.c"), "t", "421"),
        (aiosmtplib.SMTPSenderRefused(553, "not allowed", "a@b.c"), "p", "553"),
        (aiosmtplib.SMTPDataError(451, "later"), "t", "451"),
        (aiosmtplib.SMTPDataError(554, "spam"), "p", "554"),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), "p", "535"),
        (aiosmtplib.SMTPAuthenticationError(454, "temporary auth failure"), "t", "454"),
        (aiosmtplib.SMTPHeloError(421, "closing"), "t", "421"),
        (aiosmtplib.SMTPResponseException(-1, "garbled"), "t", "-1"),
        (aiosmtplib.SMTPConnectError("refused"), "t", "CONNECTION"),
        (aiosmtplib.SMTPServerDisconnected("gone"), "t", "CONNECTION"),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), "t", "TIMEOUT"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "t", "TIMEOUT"),
        (ConnectionRefusedError(111, "refused"), "t", "CONNECTION"),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"), "p", None),
    ],
)
def test_every_smtp_failure_maps_by_its_code(error: Exception, kind: str, code: str | None) -> None:
    mapped = smtp_error(error)
    expected = TransientDeliveryError if kind == "t" else PermanentDeliveryError
    assert type(mapped) is expected
    assert (mapped.code, mapped.channel) == (code, ChannelName.EMAIL)


async def test_console_provider_writes_an_eml(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    settings: Settings = make_delivery_settings(email_provider="console")
    envoi: Envoi = make_envoi(settings)
    result = await envoi.registry.run(
        context(JobName.SEND_EMAIL, email_data(metadata={"idempotencyKey": "c1"}))
    )
    assert result["status"] == "sent"
    [eml] = list(settings.outbox_dir.glob("*.eml"))
    content = eml.read_text()
    assert f"Message-ID: {message_id('c1')}" in content and EMAIL_TO in content
    assert smtp_sink.messages == []
    row = await delivery(envoi, "c1")
    assert row is not None and (row.status, row.provider) == ("SENT", "console")


async def test_inline_mode_delivers(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(queue_enabled=False))
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    assert (result.mode, result.succeeded, result.result["status"]) == ("sync", True, "sent")
    assert len(smtp_sink.messages) == 1


async def test_smtp_channel_resend_keeps_the_message_id(
    delivery_settings: Settings, smtp_sink: SmtpSink
) -> None:
    channel = SmtpEmailChannel(delivery_settings)
    email = OutgoingEmail(to=EMAIL_TO, subject="s", html="<p>h</p>", text=None, idempotency_key="same")
    await channel.send(email)
    await channel.send(email)
    ids = {m.message["Message-ID"] for m in smtp_sink.messages}
    assert ids == {message_id("same")}
    assert smtp_sink.messages[0].html is not None and smtp_sink.messages[0].text is None


async def test_reply_to_is_set_from_email_reply_to(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(email_reply_to="Support <support@envoi.test>"))
    await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    [received] = smtp_sink.messages
    assert received.message["Reply-To"] == "Support <support@envoi.test>"
