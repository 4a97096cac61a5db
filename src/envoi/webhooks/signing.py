"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec 1.0.0, symmetric scheme).

    webhook-id:        the event's id, the same on every retry (the receiver's idempotency key)
    webhook-timestamp: the attempt's time, integer seconds since the epoch
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">  [space v1,<...> ...]

The HMAC key is the base64-decoded part of the secret after `whsec_`. Several signatures, separated by
spaces, let a sender sign with an old and a new secret during a rotation; a receiver accepts the request
when any `v1` signature matches. `verify` is what a Python receiver calls; it is also how envoi's own
tests would verify, except that they use an independent implementation on purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from envoi.errors import WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SECRET_PREFIX",
    "new_secret",
    "sign",
    "signature_header",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 (the spec's prefix, not a secret)
#: The spec asks for 24 to 64 random bytes.
SECRET_BYTES = 32
#: How far a webhook's timestamp may be from the receiver's clock (replay protection).
DEFAULT_TOLERANCE_S = 300
VERSION = "v1"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret, with or without its `whsec_` prefix, padded or not."""
    raw = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be whsec_ followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def sign(secret: str, msg_id: str, timestamp: int, payload: bytes | str) -> str:
    """`v1,<base64 signature>` of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + _bytes(payload)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, payload: bytes | str) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated."""
    return " ".join(sign(secret, msg_id, timestamp, payload) for secret in secrets)


def verify(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its JSON body, parsed.

    `payload` is the raw body as received (parse it only after: re-serialised JSON may differ by a
    byte). `headers` may be any mapping; names are matched without regard to case. Raises
    `WebhookVerificationError` when a header is missing, the timestamp is more than `tolerance_s` from
    `now` (default: the current time) either way, or no `v1` signature matches.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    missing = [
        name
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not value
    ]
    if missing or msg_id is None or stamp is None or signatures is None:
        raise WebhookVerificationError(f"Missing header(s): {', '.join(missing)}")
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise WebhookVerificationError(f"Timestamp too old ({round(current - timestamp)} s ago)")
    if timestamp > current + tolerance_s:
        raise WebhookVerificationError(f"Timestamp too new ({round(timestamp - current)} s ahead)")
    body = _bytes(payload)
    expected = base64.b64decode(sign(secret, msg_id, timestamp, body).partition(",")[2])
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != VERSION:
            continue  # another scheme (v1a: asymmetric) or a newer version: not ours to check
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            try:
                return json.loads(body)
            except ValueError:
                raise WebhookVerificationError("Signature valid but the body is not JSON") from None
    raise WebhookVerificationError("No matching signature")
