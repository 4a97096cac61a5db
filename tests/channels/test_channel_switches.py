"""SMS and WhatsApp as the original system expects them: on when Twilio is configured (under its variable
names too), off only when told; a job for a channel that is off is a visible outcome (ledger row with the
reason, a WARNING line with the masked recipient, a metric), never a silent completion."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from envoi.config import Settings
from envoi.masking import mask_phone
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import PHONE_TO, context, job_delivery, text_data
from tests.fixtures.delivery import SMS_FROM, WHATSAPP_FROM
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually


def twilio_settings(make_settings: Any, twilio_server: TwilioServer, **overrides: Any) -> Settings:
    """Twilio configured under the original system's names, SMS_ENABLED and WHATSAPP_ENABLED unset."""
    values: dict[str, Any] = {
        "twilio_api_base_url": twilio_server.base_url,
        "twilio_account_sid": twilio_server.account_sid,
        "twilio_auth_token": twilio_server.auth_token,
        "sms_from": SMS_FROM,
        "whatsapp_from": WHATSAPP_FROM,
        "api_url": "http://envoi.test",
    }
    values.update(overrides)
    return make_settings(**values)


async def test_configured_channels_are_on_without_their_flags(
    make_settings: Any, make_envoi: Any, twilio_server: TwilioServer
) -> None:
    settings = twilio_settings(make_settings, twilio_server)
    assert (settings.sms_enabled, settings.whatsapp_enabled) == (True, True)
    envoi: Envoi = make_envoi(settings)
    sms = await envoi.registry.run(context(JobName.SEND_SMS, text_data(), job_id="1"))
    whatsapp = await envoi.registry.run(context(JobName.SEND_WHATSAPP, text_data(), job_id="2"))
    assert sms["status"] == whatsapp["status"] == "sent"
    assert [(m["From"], m["To"]) for m in twilio_server.messages] == [
        (SMS_FROM, PHONE_TO),
        (f"whatsapp:{WHATSAPP_FROM}", f"whatsapp:{PHONE_TO}"),
    ]


@pytest.mark.parametrize(
    ("job", "channel", "overrides", "reason"),
    [
        (JobName.SEND_SMS, "sms", {"sms_enabled": False}, "SMS_ENABLED=false"),
        (JobName.SEND_WHATSAPP, "whatsapp", {"whatsapp_enabled": False}, "WHATSAPP_ENABLED=false"),
        (JobName.SEND_SMS, "sms", {"sms_from": None}, "not configured: TWILIO_PHONE_NUMBER not set"),
        (
            JobName.SEND_WHATSAPP,
            "whatsapp",
            {"twilio_auth_token": None},
            "not configured: TWILIO_AUTH_TOKEN not set",
        ),
    ],
)
async def test_a_job_for_a_channel_that_is_off_is_visible(
    make_settings: Any,
    make_envoi: Any,
    start_worker: Any,
    twilio_server: TwilioServer,
    caplog: pytest.LogCaptureFixture,
    job: JobName,
    channel: str,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    envoi: Envoi = make_envoi(twilio_settings(make_settings, twilio_server, **overrides))
    await start_worker(envoi)
    counted_before = REGISTRY.get_sample_value("envoi_jobs_channel_disabled_total", {"channel": channel}) or 0
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, job, text_data())

    async def cancelled() -> Any:
        row = await job_delivery(envoi, result.job_id)
        return row if row is not None and row.status == "CANCELLED" else None

    row = await eventually(cancelled, message="ledger row CANCELLED")
    assert (row.channel, row.error_code, row.error_message) == (channel, "CHANNEL_DISABLED", reason)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "not sent" in r.getMessage()]
    assert mask_phone(PHONE_TO) in warning.getMessage() and reason in warning.getMessage()
    assert PHONE_TO not in caplog.text
    counted = REGISTRY.get_sample_value("envoi_jobs_channel_disabled_total", {"channel": channel})
    assert counted == counted_before + 1
    assert twilio_server.requests == []
