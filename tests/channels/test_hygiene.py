"""What leaves in logs (masked recipients, never bodies or secrets) and what is closed with the Envoi."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from envoi.config import Settings
from envoi.errors import PermanentDeliveryError
from envoi.queue.names import JobName
from envoi.runtime import Envoi
from tests.channels.support import EMAIL_TO, PHONE_TO, context, email_data, text_data
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer


async def test_logs_mask_recipients_and_never_show_bodies(
    make_delivery_settings: Any,
    make_envoi: Any,
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings())
    caplog.set_level(logging.DEBUG, logger="envoi")
    await envoi.registry.run(context(JobName.SEND_EMAIL, email_data(), job_id="1"))
    await envoi.registry.run(context(JobName.SEND_EMAIL, email_data(), job_id="1"))  # skipped
    await envoi.registry.run(context(JobName.SEND_SMS, text_data(), job_id="2"))
    twilio_server.fail_next(status=400, code=21211, message="Invalid 'To' Phone Number")
    with pytest.raises(PermanentDeliveryError):
        await envoi.registry.run(context(JobName.SEND_WHATSAPP, text_data(), job_id="3"))
    # envoi's own loggers: third-party DEBUG output (SQL parameters) is not envoi's to word.
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("envoi"))
    assert "j***@example.com" in text and "+33 6** ** ** 78" in text
    for secret in (EMAIL_TO, PHONE_TO, "Bonjour Jeanne", "Rappel", twilio_server.auth_token):
        assert secret not in text, secret


async def test_closing_the_envoi_closes_the_twilio_client(delivery_settings: Settings) -> None:
    envoi = Envoi(delivery_settings)
    # The channels' closer (the webhooks' HTTP client has its own).
    [channels] = [c.__self__ for c in envoi.closers if hasattr(getattr(c, "__self__", None), "twilio")]
    assert channels.twilio is not None
    await envoi.close()
    assert channels.twilio.client.is_closed
