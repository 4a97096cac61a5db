"""The shared test servers themselves: the SMTP sink and the Twilio stand-in behave as promised."""

from __future__ import annotations

import aiosmtplib
import httpx
import pytest

from envoi.config import Settings
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer


async def test_smtp_sink_records_and_fails_on_demand(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(code=451, times=1, stage="rcpt")
    message = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await aiosmtplib.send(
            message,
            hostname=smtp_sink.host,
            port=smtp_sink.port,
            sender="a@example.com",
            recipients=["b@example.com"],
        )
    smtp_sink.fail_next(code=554, times=1, stage="data")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(
            message,
            hostname=smtp_sink.host,
            port=smtp_sink.port,
            sender="a@example.com",
            recipients=["b@example.com"],
        )
    assert refused.value.code == 554
    await aiosmtplib.send(
        message,
        hostname=smtp_sink.host,
        port=smtp_sink.port,
        sender="a@example.com",
        recipients=["b@example.com"],
    )
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["b@example.com"]
    assert received.message["Subject"] == "hi"
    assert smtp_sink.refusals == [("rcpt", 451), ("data", 554)]


async def test_twilio_server_checks_auth_and_fails_on_demand(twilio_server: TwilioServer) -> None:
    url = f"{twilio_server.base_url}/2010-04-01/Accounts/{twilio_server.account_sid}/Messages.json"
    form = {"To": "+33612345678", "From": "+15005550006", "Body": "hi"}
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, data=form, auth=("nope", "nope"))).status_code == 401
        twilio_server.fail_next(status=429, retry_after=2)
        limited = await client.post(
            url, data=form, auth=(twilio_server.account_sid, twilio_server.auth_token)
        )
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
        twilio_server.fail_next(status=400, code=21211, message="Invalid 'To' Phone Number")
        bad = await client.post(url, data=form, auth=(twilio_server.account_sid, twilio_server.auth_token))
        assert (bad.status_code, bad.json()["code"]) == (400, 21211)
        ok = await client.post(url, data=form, auth=(twilio_server.account_sid, twilio_server.auth_token))
    assert ok.status_code == 201
    [sent] = twilio_server.messages
    assert sent["sid"] == ok.json()["sid"] and sent["Body"] == "hi"


def test_delivery_settings_point_at_the_servers(
    delivery_settings: Settings, smtp_sink: SmtpSink, twilio_server: TwilioServer
) -> None:
    assert (delivery_settings.smtp_host, delivery_settings.smtp_port) == (smtp_sink.host, smtp_sink.port)
    assert str(delivery_settings.twilio_api_base_url).rstrip("/") == twilio_server.base_url
    assert delivery_settings.sms_enabled and delivery_settings.whatsapp_enabled
