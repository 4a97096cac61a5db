"""Email through Resend's HTTP API, over one `httpx.AsyncClient` kept alive between sends.

    POST {RESEND_API_BASE_URL}/emails          Authorization: Bearer {RESEND_API_KEY}
                                               Idempotency-Key: {the ledger's key}
    {"from", "to": [to], "subject", "html", "text"?, "reply_to"?, "headers": {"X-Entity-Ref-ID"},
     "attachments"?: [{"filename", "content": base64, "content_type"}]}
    -> 200 {"id": "..."}                       kept as the ledger row's provider_message_id

Resend remembers an Idempotency-Key for 24 hours and answers a repeat with the first email's id: a retry
after a lost answer does not send twice. `resend_error()` is the one place Resend's answers become
envoi's errors (`{"statusCode", "name", "message"}`): by the rule of `envoi.channels.http`, plus 409
`concurrent_idempotent_requests` retried (the same key is still being processed; Resend says try again).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import httpx

from envoi.channels.base import ChannelName, OutgoingEmail, SendReceipt
from envoi.channels.http import (
    BearerAuth,
    json_body,
    provider_client,
    retry_after_seconds,
    status_error,
    transport_error,
)
from envoi.channels.mime import REFERENCE_HEADER, reference
from envoi.config import Settings
from envoi.errors import DeliveryError, TransientDeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.channels.email")

PROVIDER = "resend"
#: Resend refuses longer keys (400 invalid_idempotency_key); the ledger's keys are at most 255.
MAX_IDEMPOTENCY_KEY = 256


def resend_error(response: httpx.Response) -> DeliveryError:
    """An error for a non-2xx answer; `code` is Resend's error name (`validation_error`, ...)."""
    body = json_body(response)
    name = detail = None
    if isinstance(body, dict):
        name, detail = body.get("name"), body.get("message")
    code = str(name) if name else str(response.status_code)
    message = f"Resend answered {response.status_code}: {detail or response.reason_phrase}"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if response.status_code == 409 and name == "concurrent_idempotent_requests":
        return TransientDeliveryError(message, channel=ChannelName.EMAIL, code=code, retry_after=retry_after)
    return status_error(
        channel=ChannelName.EMAIL,
        message=message,
        status=response.status_code,
        code=code,
        retry_after=retry_after,
    )


def idempotency_header(key: str) -> str:
    """The ledger's key as is when an HTTP header can carry it, else its SHA-256 (as stable)."""
    if key.isascii() and key.isprintable() and len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class ResendEmailChannel:
    name = ChannelName.EMAIL
    provider = PROVIDER

    def __init__(self, settings: Settings) -> None:
        if settings.resend_api_key is None:
            raise ValueError("RESEND_API_KEY is required")  # the settings refuse to start without it
        self.url = str(settings.resend_api_base_url).rstrip("/") + "/emails"
        self.sender = settings.email_from
        self.reply_to = settings.email_reply_to
        self.client = provider_client(
            auth=BearerAuth(settings.resend_api_key), timeout=settings.email_api_timeout_s
        )

    def payload(self, message: OutgoingEmail) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "from": self.sender,
            "to": [message.to],
            "subject": message.subject,
            "html": message.html,
            "headers": {REFERENCE_HEADER: reference(message.idempotency_key), **dict(message.headers)},
        }
        if message.text is not None:
            payload["text"] = message.text
        if self.reply_to:
            payload["reply_to"] = self.reply_to
        if message.attachments:
            payload["attachments"] = [
                {
                    "filename": a.filename,
                    "content": base64.b64encode(a.content).decode("ascii"),
                    "content_type": a.content_type,
                }
                for a in message.attachments
            ]
        return payload

    async def send(self, message: OutgoingEmail) -> SendReceipt:
        headers = {"Idempotency-Key": idempotency_header(message.idempotency_key)}
        try:
            response = await self.client.post(self.url, json=self.payload(message), headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error("Resend", self.name, exc) from exc
        if not response.is_success:
            raise resend_error(response)
        body = json_body(response)
        email_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(email_id, str) or not email_id:
            # Safe to retry: the Idempotency-Key makes Resend answer with the first email's id.
            raise TransientDeliveryError("Resend answered without an email id", channel=self.name)
        log.info("Email sent to %s by Resend (id %s)", mask_recipient(message.to), email_id)
        return SendReceipt(provider=self.provider, provider_message_id=email_id)

    async def aclose(self) -> None:
        await self.client.aclose()
