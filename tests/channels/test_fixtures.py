"""The shared test servers themselves: the SMTP sink and the Twilio, Resend and SendGrid stand-ins
behave as promised (and refuse what the real APIs refuse)."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import httpx
import pytest

from envoi.config import Settings
from tests.fixtures.resend import ResendServer
from tests.fixtures.sendgrid import SendGridServer
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


#: A body both email APIs' stand-ins take, in each one's shape.
RESEND_BODY = {
    "from": "envoi <no-reply@envoi.test>",
    "to": ["b@example.com"],
    "subject": "hi",
    "html": "<p>hi</p>",
}
SENDGRID_BODY = {
    "personalizations": [{"to": [{"email": "b@example.com"}]}],
    "from": {"email": "no-reply@envoi.test"},
    "subject": "hi",
    "content": [{"type": "text/plain", "value": "hi"}, {"type": "text/html", "value": "<p>hi</p>"}],
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from": "not an address"}, "from"),
        ({"to": []}, "to"),
        ({"subject": ""}, "subject"),
        ({"html": None}, "html"),
        ({"headers": {"X-Count": 3}}, "headers"),
        ({"attachments": [{"filename": "a.ics", "content": "not base64!"}]}, "attachments[0].content"),
    ],
)
async def test_resend_stand_in_refuses_what_resend_refuses(
    resend_server: ResendServer, change: dict[str, Any], field: str
) -> None:
    body = {key: value for key, value in {**RESEND_BODY, **change}.items() if value is not None}
    auth = {"Authorization": f"Bearer {resend_server.api_key}"}
    async with httpx.AsyncClient(base_url=resend_server.base_url) as client:
        assert (await client.post("/emails", json=RESEND_BODY)).status_code == 401
        refused = await client.post("/emails", json=body, headers=auth)
        assert refused.status_code == 422 and field in refused.json()["message"]
        ok = await client.post("/emails", json=RESEND_BODY, headers={**auth, "Idempotency-Key": "k"})
        again = await client.post("/emails", json=RESEND_BODY, headers={**auth, "Idempotency-Key": "k"})
        other = await client.post(
            "/emails", json={**RESEND_BODY, "subject": "x"}, headers={**auth, "Idempotency-Key": "k"}
        )
    assert ok.status_code == again.status_code == 200 and ok.json()["id"] == again.json()["id"]
    assert other.status_code == 409
    assert len(resend_server.messages) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personalizations": []}, "personalizations"),
        ({"personalizations": [{"to": [{"name": "no email"}]}]}, "personalizations.0.to"),
        ({"from": "no-reply@envoi.test"}, "from.email"),
        ({"subject": None}, "subject"),
        (
            {"content": [{"type": "text/html", "value": "<p>hi</p>"}, {"type": "text/plain", "value": "hi"}]},
            "content",
        ),
        ({"headers": {"Subject": "spoofed"}}, "headers"),
        ({"custom_args": {"n": 1}}, "custom_args"),
        ({"attachments": [{"filename": "a.ics", "content": "%%%"}]}, "attachments.0.content"),
    ],
)
async def test_sendgrid_stand_in_refuses_what_sendgrid_refuses(
    sendgrid_server: SendGridServer, change: dict[str, Any], field: str
) -> None:
    body = {key: value for key, value in {**SENDGRID_BODY, **change}.items() if value is not None}
    auth = {"Authorization": f"Bearer {sendgrid_server.api_key}"}
    async with httpx.AsyncClient(base_url=sendgrid_server.base_url) as client:
        assert (
            await client.post("/v3/mail/send", json=SENDGRID_BODY, headers={"Authorization": "Bearer x"})
        ).status_code == 401
        refused = await client.post("/v3/mail/send", json=body, headers=auth)
        assert refused.status_code == 400 and field in refused.json()["errors"][0]["message"]
        sendgrid_server.fail_next(status=429, retry_after=3)
        limited = await client.post("/v3/mail/send", json=SENDGRID_BODY, headers=auth)
        ok = await client.post("/v3/mail/send", json=SENDGRID_BODY, headers=auth)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert ok.status_code == 202 and ok.content == b""
    [sent] = sendgrid_server.messages
    assert sent["id"] == ok.headers["X-Message-Id"]
