"""Email through Resend and SendGrid, each against its local stand-in and a real worker and ledger: sent
once with the provider's id kept; 429 retried after Retry-After; 5xx, timeouts and refused connections
retried; 401 and 400 dead-lettered after one attempt; the .ics arrives byte for byte; the API key never
shows; one kept-alive connection per channel."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import pytest
from icalendar import Calendar

from envoi.channels.base import OutgoingEmail
from envoi.channels.email_resend import ResendEmailChannel
from envoi.channels.email_sendgrid import SendGridEmailChannel
from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from envoi.notifications import ics
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.email_api_support import EmailApi, email_api
from tests.channels.support import DIRECT_KEY, EMAIL_TO, Recorder, context, delivery, email_data, job_delivery
from tests.helpers import eventually, job_state
from tests.notifications.factories import make_appointment

CHANNELS = {"resend": ResendEmailChannel, "sendgrid": SendGridEmailChannel}


@pytest.fixture(params=["resend", "sendgrid"])
def api(request: pytest.FixtureRequest) -> EmailApi:
    return email_api(request.param, request.getfixturevalue(f"{request.param}_server"))


async def started(make_envoi: Any, start_worker: Any, settings: Settings) -> tuple[Envoi, Recorder]:
    envoi: Envoi = make_envoi(settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    return envoi, recorder


async def _row(envoi: Envoi, key: str, status: str) -> Any:
    row = await delivery(envoi, key)
    return row if row is not None and row.status == status else None


async def _job_row(envoi: Envoi, job_id: str, status: str) -> Any:
    row = await job_delivery(envoi, job_id)
    return row if row is not None and row.status == status else None


async def test_email_is_sent_once_and_the_ledger_keeps_the_provider_id(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any, start_worker: Any
) -> None:
    envoi, _ = await started(make_envoi, start_worker, make_delivery_settings(**api.settings()))
    data = email_data(metadata={"idempotencyKey": "welcome-u1", "templateKey": "welcome"})
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
    [sent] = await eventually(lambda: api.server.messages, message=f"email posted to {api.name}")
    assert api.recipients(sent) == [EMAIL_TO]
    row = await eventually(lambda: _row(envoi, "welcome-u1", "SENT"), message="ledger row SENT")
    assert (row.channel, row.provider, row.template_key) == ("email", api.name, "welcome")
    assert row.provider_message_id == sent["id"]
    # The same message again (another job, the same key): the ledger answers, the provider is not asked.
    again = await envoi.registry.run(context(JobName.SEND_EMAIL, data, job_id="2"))
    assert again["status"] == "skipped" and again["providerMessageId"] == sent["id"]
    assert len(api.server.requests) == 1


async def test_429_is_retried_after_retry_after(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any, start_worker: Any
) -> None:
    envoi, recorder = await started(make_envoi, start_worker, make_delivery_settings(**api.settings()))
    api.server.fail_next(status=429, retry_after=2, message="Too many requests")
    started_at = time.monotonic()
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    await eventually(lambda: api.server.messages, timeout=15, message="sent on the second attempt")
    # The job's own backoff is 50 ms: only Retry-After explains two seconds.
    assert time.monotonic() - started_at >= 1.9
    assert api.server.statuses()[0] == 429 and len(api.server.statuses()) == 2
    assert recorder.failures == []


async def test_5xx_is_retried(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any, start_worker: Any
) -> None:
    envoi, _ = await started(make_envoi, start_worker, make_delivery_settings(**api.settings()))
    api.server.fail_next(status=503, times=2, message="Service unavailable")
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    await eventually(lambda: api.server.messages, message="sent on the third attempt")
    assert api.server.statuses()[:2] == [503, 503]
    row = await eventually(lambda: _job_row(envoi, result.job_id, "SENT"), message="SENT")
    assert row.attempts == 3


@pytest.mark.parametrize("refusal", ["wrong key (401)", "bad request (400)"])
async def test_401_and_400_are_dead_lettered_after_one_attempt(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any, start_worker: Any, refusal: str
) -> None:
    overrides = {api.key_setting: "not-the-key"} if "401" in refusal else {}
    if "400" in refusal:
        api.server.fail_next(status=400, times=5, message="The from address is not verified")
    envoi, recorder = await started(
        make_envoi, start_worker, make_delivery_settings(**api.settings(**overrides))
    )
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    [failure] = await eventually(lambda: recorder.failures, message="dead letter")
    assert failure.attempts_made == 1
    assert api.server.statuses() == [401 if "401" in refusal else 400]
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id) == "failed"
    row = await job_delivery(envoi, result.job_id)
    assert row is not None and row.status == "FAILED"
    assert "not-the-key" not in failure.error_message + (row.error_message or "")


async def test_ics_attachment_arrives_byte_for_byte(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any, start_worker: Any
) -> None:
    envoi, _ = await started(make_envoi, start_worker, make_delivery_settings(**api.settings()))
    appointment = make_appointment()
    invitation = ics.build_invitation(
        appointment, summary="Rendez-vous", description="Avec Jane", organizer_fallback="no-reply@envoi.test"
    )
    attachment = {
        "filename": ics.FILENAME,
        "contentType": ics.CONTENT_TYPE,
        "content": base64.b64encode(invitation).decode(),
    }
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data(attachments=[attachment]))
    [sent] = await eventually(lambda: api.server.messages, message="email with attachment posted")
    [(filename, content_type, content)] = api.attachments(sent)
    assert (filename, content_type) == (ics.FILENAME, ics.CONTENT_TYPE)
    decoded = base64.b64decode(content, validate=True)
    assert decoded == invitation
    [event] = Calendar.from_ical(decoded).walk("VEVENT")
    assert str(event["UID"]) == ics.event_uid(appointment.appointment_id)
    assert event.decoded("DTSTART") == appointment.scheduled_at


async def test_api_key_never_shows_in_logs_reprs_or_errors(
    api: EmailApi,
    make_delivery_settings: Any,
    make_envoi: Any,
    start_worker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    settings = make_delivery_settings(**api.settings())
    envoi, recorder = await started(make_envoi, start_worker, settings)
    api.server.fail_next(status=503)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    await eventually(lambda: api.server.messages, message="sent after a 503")
    wrong = make_delivery_settings(**api.settings(**{api.key_setting: "wrong-secret-key"}))
    refused = make_envoi(wrong)
    with pytest.raises(PermanentDeliveryError) as raised:
        await refused.registry.run(context(JobName.SEND_EMAIL, email_data(), job_id="x"))
    channel = CHANNELS[api.name](settings)
    try:
        shown = "\n".join(
            [caplog.text, repr(settings), repr(wrong), repr(channel), repr(channel.client.auth)]
            + [repr(vars(channel)), str(raised.value), repr(raised.value)]
            + [failure.error_message for failure in recorder.failures]
        )
    finally:
        await channel.aclose()
    assert f"by {api.name}" in caplog.text.lower()  # the log was captured: the check below means something
    for secret in (api.server.api_key, "wrong-secret-key"):
        assert secret not in shown


async def test_one_connection_is_kept_alive_and_closed_with_the_channel(
    api: EmailApi, make_delivery_settings: Any
) -> None:
    channel = CHANNELS[api.name](make_delivery_settings(**api.settings()))
    for key in ("k1", "k2", "k3"):
        await channel.send(
            OutgoingEmail(to=EMAIL_TO, subject="s", html="<p>h</p>", text="h", idempotency_key=key)
        )
    assert len({request.client_port for request in api.server.requests}) == 1
    await channel.aclose()
    assert channel.client.is_closed


async def test_unreachable_provider_is_transient(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any
) -> None:
    settings = make_delivery_settings(
        **api.settings(**{f"{api.name}_api_base_url": f"http://127.0.0.1:{free_port()}"})
    )
    envoi: Envoi = make_envoi(settings)
    with pytest.raises(TransientDeliveryError) as raised:
        await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    assert raised.value.code == "CONNECTION"


async def test_slow_provider_times_out_as_transient(
    api: EmailApi, make_delivery_settings: Any, make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(**api.settings(email_api_timeout_s=0.3)))
    api.server.fail_next(status=200, delay=1.5)
    with pytest.raises(TransientDeliveryError) as raised:
        await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    assert raised.value.code == "TIMEOUT"
    row = await delivery(envoi, DIRECT_KEY)
    assert row is not None and (row.status, row.error_code) == ("FAILED", "TIMEOUT")
