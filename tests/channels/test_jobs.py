"""The job models: the camelCase wire contract, validation naming the field, and the worker failing
invalid data at once."""

from __future__ import annotations

from typing import Any

import pytest

from envoi.config import Settings
from envoi.errors import InvalidJobDataError, UnknownJobError
from envoi.notifications.jobs import (
    CreateInAppNotificationJob,
    SendEmailJob,
    SendSmsJob,
    SendWhatsAppJob,
    parse_job,
)
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.channels.support import Recorder, email_data, text_data
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import bull_queue, eventually, job_state


def test_email_job_round_trips_camel_case_and_keeps_unknown_metadata() -> None:
    data = email_data(
        attachments=[{"filename": "rdv.ics", "contentType": "text/calendar", "content": "QkVHSU4="}],
        metadata={
            "userId": "u1",
            "organizationId": "o1",
            "templateKey": "appointment_confirmation",
            "idempotencyKey": "k-1",
            "campaign": {"source": "crm"},
        },
    )
    job = parse_job("SEND_EMAIL", data)
    assert isinstance(job, SendEmailJob)
    assert job.metadata is not None
    assert (job.metadata.user_id, job.metadata.idempotency_key, job.metadata.flow) == (
        "u1",
        "k-1",
        "appointment_confirmation",
    )
    assert job.attachments is not None and job.attachments[0].decoded() == b"BEGIN"
    dumped = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == data


def test_other_jobs_parse() -> None:
    assert isinstance(parse_job("SEND_SMS", text_data()), SendSmsJob)
    whatsapp = parse_job("SEND_WHATSAPP", text_data(to="whatsapp:+33612345678"))
    assert isinstance(whatsapp, SendWhatsAppJob) and whatsapp.to == "+33612345678"
    inapp = parse_job("CREATE_INAPP_NOTIFICATION", {"userId": "u1", "title": "T", "message": "M"})
    assert isinstance(inapp, CreateInAppNotificationJob) and inapp.user_id == "u1"


def test_old_template_spelling_names_the_flow() -> None:
    job = parse_job("SEND_SMS", text_data(metadata={"template": "reminder_24h", "appointmentId": 42}))
    assert job.metadata is not None
    assert (job.metadata.flow, job.metadata.appointment_id) == ("reminder_24h", "42")


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("SEND_EMAIL", {"subject": "s", "html": "h"}, "to"),
        ("SEND_EMAIL", email_data(to="not-an-email"), "to"),
        ("SEND_EMAIL", email_data(subject=""), "subject"),
        (
            "SEND_EMAIL",
            email_data(attachments=[{"filename": "a", "content": "%%%"}]),
            "attachments.0.content",
        ),
        ("SEND_EMAIL", email_data(metadata="nope"), "metadata"),
        ("SEND_SMS", text_data(to="0612345678"), "to"),
        ("SEND_SMS", text_data(to="+3361234"), "to"),
        ("SEND_SMS", text_data(message="x" * 1601), "message"),
        ("SEND_WHATSAPP", text_data(to="whatsapp:0612345678"), "to"),
        ("CREATE_INAPP_NOTIFICATION", {"title": "t", "message": "m"}, "userId"),
    ],
)
def test_invalid_data_names_the_field(name: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidJobDataError) as raised:
        parse_job(name, data)
    assert field in raised.value.fields, raised.value.fields
    assert raised.value.job_name == name
    assert f"{field}:" in str(raised.value)


def test_unknown_job_and_non_object_data() -> None:
    with pytest.raises(UnknownJobError):
        parse_job("SEND_PIGEON", {})
    with pytest.raises(InvalidJobDataError) as raised:
        parse_job("SEND_SMS", ["+33612345678"])
    assert raised.value.fields == {"data": "must be an object"}


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("SEND_EMAIL", {"subject": "s", "html": "h"}, "to"),
        ("SEND_EMAIL", email_data(to="jeanne@"), "to"),
        ("SEND_SMS", text_data(to="06 12 34 56 78"), "to"),
    ],
)
async def test_worker_fails_invalid_data_at_once_without_retries(
    delivery_settings: Settings,
    make_envoi: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
    name: str,
    data: dict[str, Any],
    field: str,
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    # A foreign producer (Node) adds it: envoi's own `enqueue` would refuse it at the call.
    with pytest.raises(InvalidJobDataError):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, name, data)
    job = await bull_queue(envoi.queue, NOTIFICATIONS_QUEUE).add(name, data, {"attempts": 5})
    await eventually(lambda: recorder.failures, message="final failure")
    [failure] = recorder.failures
    assert failure.attempts_made == 1
    assert f"Invalid data for {name}: {field}:" in failure.error_message
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, str(job.id)) == "failed"
    assert smtp_sink.messages == [] and twilio_server.requests == []
