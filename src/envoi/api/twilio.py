"""Twilio status callbacks: the request signature, and the ledger update they bring.

Signature (Twilio's documented algorithm): take the full URL Twilio called, append each POST parameter's
name and value sorted by name, HMAC-SHA1 the result with the account's auth token, base64 it, and compare
with `X-Twilio-Signature`. The URL is the public one (API_URL + path): behind a proxy the URL this process
sees is not the one Twilio signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.models import DeliveryStatus, MessageDelivery

#: Twilio's MessageStatus values that end a message's life, and the ledger status each one means.
FINAL_STATUSES = {
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "failed": DeliveryStatus.FAILED,
    "undelivered": DeliveryStatus.FAILED,
}


def expected_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    payload = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    return hmac.compare_digest(expected_signature(auth_token, url, params).encode(), signature.encode())


async def apply_status(
    session: AsyncSession, *, message_sid: str, message_status: str, error_code: str | None
) -> int:
    """Move the ledger row of `message_sid` to DELIVERED or FAILED; returns the rows changed.

    Intermediate statuses (queued, sending, sent) change nothing, and a late "failed" never overwrites a
    DELIVERED row (callbacks may arrive out of order).
    """
    target = FINAL_STATUSES.get(message_status.lower())
    if target is None:
        return 0
    allowed_from = [DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.FAILED]
    if target is DeliveryStatus.DELIVERED:
        allowed_from.append(DeliveryStatus.DELIVERED)
    values: dict[str, object] = {"status": target, "updated_at": datetime.now(UTC)}
    if target is DeliveryStatus.FAILED:
        values["error_code"] = error_code
        values["error_message"] = f"Twilio status {message_status}" + (
            f" (error {error_code})" if error_code else ""
        )
    result = await session.execute(
        update(MessageDelivery)
        .where(
            MessageDelivery.provider_message_id == message_sid,
            MessageDelivery.status.in_([str(s) for s in allowed_from]),
        )
        .values(**values)
    )
    return int(getattr(result, "rowcount", 0) or 0)
