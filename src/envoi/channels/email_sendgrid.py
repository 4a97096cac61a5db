"""Email through SendGrid's v3 Mail Send API, over one `httpx.AsyncClient` kept alive between sends.

    POST {SENDGRID_API_BASE_URL}/v3/mail/send  Authorization: Bearer {SENDGRID_API_KEY}
    {"personalizations": [{"to": [{"email": to}]}], "from": {"email", "name"?}, "reply_to"?: {"email"},
     "subject", "content": [{"type": "text/plain"}?, {"type": "text/html"}],   text/plain first, as required
     "attachments"?: [{"content": base64, "type", "filename", "disposition": "attachment"}],
     "headers": {"X-Entity-Ref-ID"}, "custom_args": {"envoi_idempotency_key": the ledger's key}}
    -> 202, no body; the message id in the `X-Message-Id` header, kept in the ledger

SendGrid takes no idempotency key: the ledger's key travels in `custom_args`, which SendGrid hands back
with every event webhook, so an event finds its delivery row. `sendgrid_error()` is the one place
SendGrid's answers (`{"errors": [{"message", "field", "help"}]}`) become envoi's errors, by the rule of
`envoi.channels.http`; a 429's wait comes from `Retry-After`, else from `X-RateLimit-Reset` (the epoch
second SendGrid's limit resets at, which is what SendGrid sends).
"""

from __future__ import annotations

import base64
import logging
import time
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
from envoi.channels.mime import REFERENCE_HEADER, reference, sender_parts
from envoi.config import Settings
from envoi.errors import DeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.channels.email")

PROVIDER = "sendgrid"
#: The custom argument carrying the ledger's key.
IDEMPOTENCY_ARG = "envoi_idempotency_key"


def sendgrid_error(response: httpx.Response) -> DeliveryError:
    """An error for a non-2xx answer; `code` is the HTTP status (SendGrid's errors have no codes)."""
    body = json_body(response)
    details = []
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        for error in body["errors"]:
            if isinstance(error, dict) and error.get("message"):
                field = f"{error['field']}: " if error.get("field") else ""
                details.append(f"{field}{error['message']}")
    detail = "; ".join(details) or response.reason_phrase
    return status_error(
        channel=ChannelName.EMAIL,
        message=f"SendGrid answered {response.status_code}: {detail}",
        status=response.status_code,
        retry_after=_wait(response),
    )


def _wait(response: httpx.Response) -> float | None:
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    if wait is not None:
        return wait
    try:
        reset = float(response.headers.get("X-RateLimit-Reset", ""))
    except ValueError:
        return None
    return max(0.0, reset - time.time())


class SendGridEmailChannel:
    name = ChannelName.EMAIL
    provider = PROVIDER

    def __init__(self, settings: Settings) -> None:
        if settings.sendgrid_api_key is None:
            raise ValueError("SENDGRID_API_KEY is required")  # the settings refuse to start without it
        self.url = str(settings.sendgrid_api_base_url).rstrip("/") + "/v3/mail/send"
        self.sender = _address(settings.email_from)
        self.reply_to = _address(settings.email_reply_to) if settings.email_reply_to else None
        self.client = provider_client(
            auth=BearerAuth(settings.sendgrid_api_key), timeout=settings.email_api_timeout_s
        )

    def payload(self, message: OutgoingEmail) -> dict[str, Any]:
        content = []
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        payload: dict[str, Any] = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": self.sender,
            "subject": message.subject,
            "content": content,
            "headers": {REFERENCE_HEADER: reference(message.idempotency_key), **dict(message.headers)},
            "custom_args": {IDEMPOTENCY_ARG: message.idempotency_key},
        }
        if self.reply_to:
            payload["reply_to"] = self.reply_to
        if message.attachments:
            payload["attachments"] = [
                {
                    "content": base64.b64encode(a.content).decode("ascii"),
                    "type": a.content_type,
                    "filename": a.filename,
                    "disposition": "attachment",
                }
                for a in message.attachments
            ]
        return payload

    async def send(self, message: OutgoingEmail) -> SendReceipt:
        try:
            response = await self.client.post(self.url, json=self.payload(message))
        except httpx.HTTPError as exc:
            raise transport_error("SendGrid", self.name, exc) from exc
        if not response.is_success:
            raise sendgrid_error(response)
        message_id = response.headers.get("X-Message-Id") or None
        if message_id is None:
            # Accepted (2xx): retrying would send it twice. The row stays findable by custom_args.
            log.warning(
                "SendGrid accepted the email to %s without an X-Message-Id", mask_recipient(message.to)
            )
        log.info("Email sent to %s by SendGrid (id %s)", mask_recipient(message.to), message_id)
        return SendReceipt(provider=self.provider, provider_message_id=message_id)

    async def aclose(self) -> None:
        await self.client.aclose()


def _address(value: str) -> dict[str, str]:
    name, address = sender_parts(value)
    return {"email": address, "name": name} if name else {"email": address}
