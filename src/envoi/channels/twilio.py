"""SMS and WhatsApp through Twilio's Messages API, over one reusable `httpx.AsyncClient`.

    POST {TWILIO_API_BASE_URL}/2010-04-01/Accounts/{sid}/Messages.json   (basic auth sid:token)
    To, From, Body, StatusCallback={API_URL}/v1/webhooks/twilio/status     -> 201 {"sid": "SM..."}

`twilio_error()` is the one place Twilio's answers become envoi's errors, by the rule of
`envoi.channels.http` (429 and 5xx transient, `Retry-After` honoured; any other 4xx permanent), with
Twilio's own error `code` (21211 invalid number, 20003 bad credentials, ...).
"""

from __future__ import annotations

import logging

import httpx

from envoi.channels.base import ChannelName, OutgoingText, SendReceipt
from envoi.channels.http import (
    json_body,
    provider_client,
    retry_after_seconds,
    status_error,
    transport_error,
)
from envoi.config import Settings
from envoi.errors import DeliveryError, TransientDeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.channels.twilio")

PROVIDER = "twilio"
WHATSAPP_PREFIX = "whatsapp:"
STATUS_CALLBACK_PATH = "/v1/webhooks/twilio/status"


def twilio_error(channel: ChannelName, response: httpx.Response) -> DeliveryError:
    """An error for a non-2xx answer. Twilio's body is `{"code": 21211, "message": ..., "status": 400}`."""
    code, detail = str(response.status_code), response.reason_phrase
    body = json_body(response)
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        detail = str(body.get("message") or detail)
    return status_error(
        channel=channel,
        message=f"Twilio answered {response.status_code}: {detail}",
        status=response.status_code,
        code=code,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


class TwilioMessages:
    """The HTTP client, shared by the SMS and WhatsApp channels and closed with the `Envoi`."""

    def __init__(self, settings: Settings) -> None:
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        if not sid or not token:
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        base = str(settings.twilio_api_base_url).rstrip("/")
        self.url = f"{base}/2010-04-01/Accounts/{sid}/Messages.json"
        self.status_callback = settings.api_url.rstrip("/") + STATUS_CALLBACK_PATH
        self.client = provider_client(auth=(sid, token.get_secret_value()), timeout=settings.twilio_timeout_s)

    async def create(self, channel: ChannelName, *, to: str, sender: str, body: str) -> str:
        """Post one message; Twilio's SID of it."""
        form = {"To": to, "From": sender, "Body": body, "StatusCallback": self.status_callback}
        try:
            response = await self.client.post(self.url, data=form)
        except httpx.HTTPError as exc:
            raise transport_error("Twilio", channel, exc) from exc
        if not response.is_success:
            raise twilio_error(channel, response)
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        if not isinstance(sid, str) or not sid:
            # Accepted but unreadable: retrying could send twice, yet the ledger cannot record it
            # without an id either. Retry: Twilio answers 2xx with a sid in every documented case.
            raise TransientDeliveryError("Twilio answered without a message sid", channel=channel)
        return sid

    async def aclose(self) -> None:
        await self.client.aclose()


class TwilioSmsChannel:
    name = ChannelName.SMS
    provider = PROVIDER

    def __init__(self, messages: TwilioMessages, *, sender: str) -> None:
        self.messages = messages
        self.sender = sender

    async def send(self, message: OutgoingText) -> SendReceipt:
        sid = await self.messages.create(self.name, to=message.to, sender=self.sender, body=message.body)
        log.info("SMS sent to %s (sid %s)", mask_recipient(message.to), sid)
        return SendReceipt(provider=self.provider, provider_message_id=sid)

    async def aclose(self) -> None:
        return None  # the shared client is closed by its owner (`envoi.channels.Channels`)


class TwilioWhatsAppChannel:
    name = ChannelName.WHATSAPP
    provider = PROVIDER

    def __init__(self, messages: TwilioMessages, *, sender: str) -> None:
        self.messages = messages
        self.sender = _whatsapp(sender)

    async def send(self, message: OutgoingText) -> SendReceipt:
        sid = await self.messages.create(
            self.name, to=_whatsapp(message.to), sender=self.sender, body=message.body
        )
        log.info("WhatsApp message sent to %s (sid %s)", mask_recipient(message.to), sid)
        return SendReceipt(provider=self.provider, provider_message_id=sid)

    async def aclose(self) -> None:
        return None  # the shared client is closed by its owner (`envoi.channels.Channels`)


def _whatsapp(number: str) -> str:
    return number if number.startswith(WHATSAPP_PREFIX) else f"{WHATSAPP_PREFIX}{number}"
