"""What every channel is: one class with one `send()`, taking a message and returning a `SendReceipt`.

A channel turns provider failures into `TransientDeliveryError` (retry) or `PermanentDeliveryError`
(dead letter), in one place per protocol; the handler and the ledger decide nothing about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar


class ChannelName(StrEnum):
    """Stored in `message_deliveries.channel` and carried by `DeliveryError.channel`."""

    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    INAPP = "inapp"


@dataclass(frozen=True, slots=True)
class SendReceipt:
    #: `smtp`, `console`, `twilio`, `inapp`: stored in `message_deliveries.provider`.
    provider: str
    #: The provider's id of the message (Message-ID, Twilio SID, notification id).
    provider_message_id: str | None
    #: True when the provider already had this message (an in-app row created by an earlier run).
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to: str
    subject: str
    html: str
    text: str | None
    #: The ledger's key: the Message-ID is derived from it, so a resend is recognisable.
    idempotency_key: str
    attachments: tuple[OutgoingAttachment, ...] = ()
    #: Extra headers, (name, value): a marketing email's `List-Unsubscribe` and `List-Unsubscribe-Post`.
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingText:
    """An SMS or a WhatsApp message; `to` in E.164 (the WhatsApp channel adds the `whatsapp:` prefix)."""

    to: str
    body: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class InAppMessage:
    user_id: str
    title: str
    message: str
    idempotency_key: str
    metadata: dict[str, Any] | None = field(default=None)


M_contra = TypeVar("M_contra", contravariant=True)


class Channel(Protocol[M_contra]):
    name: ChannelName
    provider: str

    async def send(self, message: M_contra) -> SendReceipt:
        """Deliver one message, or raise `TransientDeliveryError` / `PermanentDeliveryError`."""
        ...

    async def aclose(self) -> None:
        """Release connections (an HTTP client); called once, when the `Envoi` closes."""
        ...
