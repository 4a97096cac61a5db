"""Each HTTP provider (Twilio, Resend, SendGrid) keeps one client for the life of its `Envoi`: its TCP
connections are reused from send to send, as many kept as are used at once, and closed with the Envoi.
Counted at the local stand-ins by the client's source port (one port, one TCP connection)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from envoi.channels.base import ChannelName, OutgoingEmail
from envoi.channels.email_resend import ResendEmailChannel
from envoi.channels.email_sendgrid import SendGridEmailChannel
from envoi.channels.http import PROVIDER_MAX_CONNECTIONS
from envoi.channels.policy import FailoverChannel, ThrottledChannel
from envoi.channels.twilio import TwilioMessages
from envoi.runtime import Envoi
from tests.channels.email_api_support import EmailApi, email_api
from tests.channels.support import EMAIL_TO, PHONE_TO
from tests.fixtures.twilio import TwilioServer

#: More than httpx keeps by default (20): with its defaults the second burst would open new connections.
AT_ONCE = 30
assert AT_ONCE <= PROVIDER_MAX_CONNECTIONS

CHANNELS = {"resend": ResendEmailChannel, "sendgrid": SendGridEmailChannel}


@pytest.fixture(params=["resend", "sendgrid"])
def api(request: pytest.FixtureRequest) -> EmailApi:
    return email_api(request.param, request.getfixturevalue(f"{request.param}_server"))


def _email(key: str) -> OutgoingEmail:
    return OutgoingEmail(to=EMAIL_TO, subject="s", html="<p>h</p>", text="h", idempotency_key=key)


async def test_email_api_bursts_reuse_their_connections(api: EmailApi, make_delivery_settings: Any) -> None:
    channel = CHANNELS[api.name](make_delivery_settings(**api.settings()))
    # Each answer held a moment, so that a burst has all its requests in flight at once.
    api.server.fail_next(status=200, times=3 * AT_ONCE, delay=0.3)
    try:
        for burst in range(3):
            await asyncio.gather(*(channel.send(_email(f"b{burst}-{i}")) for i in range(AT_ONCE)))
    finally:
        await channel.aclose()
    ports = {request.client_port for request in api.server.requests}
    assert len(api.server.requests) == 3 * AT_ONCE
    assert len(ports) <= AT_ONCE  # the second and third bursts opened none
    assert channel.client.is_closed


async def test_twilio_bursts_reuse_their_connections(
    twilio_server: TwilioServer, make_delivery_settings: Any
) -> None:
    messages = TwilioMessages(make_delivery_settings())
    try:
        for _burst in range(3):
            await asyncio.gather(
                *(
                    messages.create(ChannelName.SMS, to=PHONE_TO, sender="+15005550006", body="b")
                    for _ in range(AT_ONCE)
                )
            )
        for _ in range(5):  # one after another: one connection
            await messages.create(ChannelName.SMS, to=PHONE_TO, sender="+15005550006", body="b")
    finally:
        await messages.aclose()
    assert len(twilio_server.client_ports) == 3 * AT_ONCE + 5
    assert len(set(twilio_server.client_ports)) <= AT_ONCE
    assert len(set(twilio_server.client_ports[-5:])) == 1


async def test_closing_envoi_closes_every_provider_client(
    resend_server: Any, make_delivery_settings: Any
) -> None:
    api = email_api("resend", resend_server)
    envoi = Envoi(make_delivery_settings(**api.settings(email_providers="resend,smtp")))
    assert envoi.channels is not None and envoi.channels.twilio is not None
    email = envoi.channels.email
    assert isinstance(email, FailoverChannel)
    # Each provider: its rate limit around its span (`TracedChannel`) around the provider itself.
    resend = next(c.inner.inner for c in email.channels if isinstance(c, ThrottledChannel))
    assert isinstance(resend, ResendEmailChannel)
    clients = [envoi.channels.twilio.client, resend.client]
    await envoi.channels.email.send(_email("close-1"))
    await envoi.close()
    assert all(client.is_closed for client in clients)
    assert len(resend_server.messages) == 1
