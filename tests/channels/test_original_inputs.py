"""Jobs carrying recipients as the original system writes them reach the provider through a real worker:
phone numbers without `+` (and national ones with DEFAULT_PHONE_REGION) leave in E.164; development
addresses (`.local`, `.test`, `localhost`) reach the SMTP server unless EMAIL_STRICT_DOMAINS is set."""

from __future__ import annotations

from typing import Any

import pytest

from envoi.errors import InvalidJobDataError
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import context, email_data, text_data
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually


@pytest.mark.parametrize(
    ("raw", "region"),
    [("33612345678", None), ("06 12 34 56 78", "FR"), ("whatsapp:33612345678", None)],
)
async def test_phone_numbers_as_the_original_sends_them_leave_in_e164(
    make_delivery_settings: Any,
    make_envoi: Any,
    start_worker: Any,
    twilio_server: TwilioServer,
    raw: str,
    region: str | None,
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(default_phone_region=region))
    await start_worker(envoi)
    job = JobName.SEND_WHATSAPP if raw.startswith("whatsapp:") else JobName.SEND_SMS
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, job, text_data(to=raw))
    [sent] = await eventually(lambda: twilio_server.messages, message="message posted to Twilio")
    assert sent["To"].removeprefix("whatsapp:") == "+33612345678"


@pytest.mark.parametrize("to", ["jane@mailpit.local", "jane@mailhog.test", "jane@localhost"])
async def test_development_addresses_reach_the_smtp_server(
    make_delivery_settings: Any, make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink, to: str
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings())
    await start_worker(envoi)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data(to=to))
    [received] = await eventually(lambda: smtp_sink.messages, message="email received")
    assert received.rcpt_tos == [to]


async def test_strict_domains_refuse_them_before_any_server_is_asked(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(email_strict_domains=True))
    with pytest.raises(InvalidJobDataError) as refused:
        await envoi.registry.run(context(JobName.SEND_EMAIL, email_data(to="jane@mailpit.local")))
    assert list(refused.value.fields) == ["to"]
    assert smtp_sink.messages == []
