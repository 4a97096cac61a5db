"""Twilio status callbacks: the request signature. The ledger update they bring is the ledger's
(`DeliveryLedger.apply_provider_status`).

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


def expected_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    payload = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    return hmac.compare_digest(expected_signature(auth_token, url, params).encode(), signature.encode())
