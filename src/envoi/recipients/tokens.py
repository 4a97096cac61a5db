"""Unsubscribe tokens: who and what, signed, so that verifying one needs no database.

    token = base64url(JSON ["v1", recipient, category]) "." base64url(HMAC-SHA256(secret, that payload))

The recipient is readable by whoever holds the link (encoded, not encrypted): the link goes to that
recipient only, and the token is not logged (the route logs the masked recipient). Changing one
character of the payload or of the signature fails the check (`hmac.compare_digest`), and a token
made for one recipient cannot name another without the secret. Tokens do not expire: an unsubscribe
link in a years-old email must still work (RFC 8058 asks for a lasting link); rotating
UNSUBSCRIBE_SECRET voids every link sent before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from envoi.recipients.categories import Category

__all__ = ["BadTokenError", "ForgedTokenError", "UnsubscribeToken", "UnsubscribeTokens"]

VERSION = "v1"
#: Longer is not a token envoi made (a 320-character address, base64, and a signature fit well under).
MAX_TOKEN_LENGTH = 1024


class BadTokenError(ValueError):
    """Not a token at all (malformed): the route answers 400."""


class ForgedTokenError(ValueError):
    """Well-formed, but the signature does not match: the route answers 404, as for no such link."""


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    recipient: str
    category: Category


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def make(self, recipient: str, category: Category) -> str:
        payload = _b64(json.dumps([VERSION, recipient, str(category)], separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def read(self, token: str) -> UnsubscribeToken:
        """The token's recipient and category; BadTokenError or ForgedTokenError."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1 or not token.isascii():
            raise BadTokenError("not an unsubscribe token")
        payload, signature = token.split(".")
        # Checked before the payload is decoded: nothing of an unsigned token is read.
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise ForgedTokenError("the token's signature does not match")
        try:
            version, recipient, category = json.loads(_unb64(payload))
            return UnsubscribeToken(str(recipient), Category(category)) if version == VERSION else _bad()
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise BadTokenError("not an unsubscribe token") from None


def _bad() -> UnsubscribeToken:
    raise BadTokenError("unknown token version")
