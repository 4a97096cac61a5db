"""SMS and WhatsApp through a real worker and the Twilio stand-in: the request, 429 with Retry-After
retried, 5xx retried, other 4xx not, disabled channels."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from envoi.channels.base import ChannelName
from envoi.channels.http import retry_after_seconds
from envoi.channels.twilio import twilio_error
from envoi.config import Settings
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import (
    DIRECT_KEY,
    PHONE_TO,
    Recorder,
    context,
    delivery,
    job_delivery,
    text_data,
)
from tests.fixtures.delivery import SMS_FROM, WHATSAPP_FROM
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually, job_state


async def started(make_envoi: Any, start_worker: Any, settings: Settings) -> tuple[Envoi, Recorder]:
    envoi: Envoi = make_envoi(settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    return envoi, recorder


async def _status(envoi: Envoi, job_id: str, status: str, *, key: str | None = None) -> Any:
    row = await (delivery(envoi, key) if key else job_delivery(envoi, job_id))
    return row if row is not None and row.status == status else None


async def test_sms_is_posted_as_twilio_expects(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, twilio_server: TwilioServer
) -> None:
    envoi, _ = await started(make_envoi, start_worker, delivery_settings)
    await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE,
        JobName.SEND_SMS,
        text_data(metadata={"templateKey": "reminder_24h", "appointmentId": "a1"}),
    )
    [sent] = await eventually(lambda: twilio_server.messages, message="SMS posted")
    assert (sent["To"], sent["From"], sent["Body"]) == (PHONE_TO, SMS_FROM, "Rappel : RDV demain 10h")
    assert sent["StatusCallback"] == "http://envoi.test/v1/webhooks/twilio/status"
    row = await eventually(
        lambda: _status(envoi, "", "SENT", key=f"reminder_24h:a1:sms:{PHONE_TO}"), message="SENT"
    )
    assert (row.provider, row.provider_message_id, row.recipient) == ("twilio", sent["sid"], PHONE_TO)


async def test_whatsapp_uses_the_prefix_on_both_numbers(
    delivery_settings: Settings, make_envoi: Any, twilio_server: TwilioServer
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    result = await envoi.registry.run(context(JobName.SEND_WHATSAPP, text_data(to=f"whatsapp:{PHONE_TO}")))
    [sent] = twilio_server.messages
    assert (sent["To"], sent["From"]) == (f"whatsapp:{PHONE_TO}", f"whatsapp:{WHATSAPP_FROM}")
    assert result == {"status": "sent", "deliveryId": result["deliveryId"], "providerMessageId": sent["sid"]}
    row = await delivery(envoi, DIRECT_KEY)
    assert row is not None and (row.channel, row.recipient) == ("whatsapp", PHONE_TO)


async def test_429_with_retry_after_is_retried_after_it(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, twilio_server: TwilioServer
) -> None:
    envoi, recorder = await started(make_envoi, start_worker, delivery_settings)
    twilio_server.fail_next(status=429, times=1, retry_after=3, code=20429, message="Too Many Requests")
    started_at = time.monotonic()
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, text_data())
    await eventually(lambda: twilio_server.messages, timeout=15, message="SMS posted on the second attempt")
    # The job's own backoff is 50 ms: only Retry-After explains three seconds.
    assert time.monotonic() - started_at >= 2.9
    assert [status for status, _ in twilio_server.requests] == [429, 201]
    assert recorder.failures == []


async def test_5xx_is_retried(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, twilio_server: TwilioServer
) -> None:
    envoi, _ = await started(make_envoi, start_worker, delivery_settings)
    twilio_server.fail_next(status=503, times=2)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, text_data())
    await eventually(lambda: twilio_server.messages, message="SMS posted on the third attempt")
    assert [status for status, _ in twilio_server.requests] == [503, 503, 201]
    row = await eventually(lambda: _status(envoi, result.job_id, "SENT"), message="SENT")
    assert row.attempts == 3


async def test_400_is_not_retried_and_keeps_twilio_code(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, twilio_server: TwilioServer
) -> None:
    envoi, recorder = await started(make_envoi, start_worker, delivery_settings)
    twilio_server.fail_next(status=400, times=5, code=21211, message="Invalid 'To' Phone Number")
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, text_data())
    [failure] = await eventually(lambda: recorder.failures, message="final failure")
    assert failure.attempts_made == 1
    assert "Invalid 'To' Phone Number" in failure.error_message
    assert len(twilio_server.requests) == 1
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id) == "failed"
    row = await job_delivery(envoi, result.job_id)
    assert row is not None and (row.status, row.error_code) == ("FAILED", "21211")


async def test_wrong_credentials_are_permanent(
    make_delivery_settings: Any, make_envoi: Any, twilio_server: TwilioServer
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(twilio_auth_token="wrong"))
    with pytest.raises(PermanentDeliveryError) as raised:
        await envoi.registry.run(context(JobName.SEND_SMS, text_data()))
    assert raised.value.code == "20003"
    assert twilio_server.messages == []


async def test_unreachable_twilio_is_transient(make_delivery_settings: Any, make_envoi: Any) -> None:
    from envoi.embedded_redis import free_port

    envoi: Envoi = make_envoi(make_delivery_settings(twilio_api_base_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(TransientDeliveryError) as raised:
        await envoi.registry.run(context(JobName.SEND_SMS, text_data()))
    assert raised.value.code == "CONNECTION"


@pytest.mark.parametrize(
    ("job", "switch"), [(JobName.SEND_SMS, "sms_enabled"), (JobName.SEND_WHATSAPP, "whatsapp_enabled")]
)
async def test_disabled_channel_completes_without_sending(
    make_delivery_settings: Any, make_envoi: Any, twilio_server: TwilioServer, job: JobName, switch: str
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(**{switch: False}))
    result = await envoi.registry.run(context(job, text_data()))
    assert result == {
        "status": "disabled",
        "deliveryStatus": "CANCELLED",
        "reason": f"{switch.upper()}=false",
    }
    assert twilio_server.requests == []
    row = await delivery(envoi, DIRECT_KEY)
    assert row is not None and (row.status, row.error_message) == ("CANCELLED", f"{switch.upper()}=false")


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, TransientDeliveryError), (500, TransientDeliveryError), (404, PermanentDeliveryError)],
)
def test_http_statuses_map(status: int, kind: type) -> None:
    response = httpx.Response(status, text="not json", request=httpx.Request("POST", "http://x"))
    error = twilio_error(ChannelName.SMS, response)
    assert type(error) is kind and error.code == str(status)
