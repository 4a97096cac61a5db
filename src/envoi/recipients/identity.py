"""Who a preference belongs to: an email address, a phone number or a user id, told apart by their form.

    jane@example.com      an email address (stored lowercased: SMTP matches the domain without case,
                          and nobody expects Jane@ and jane@ to have different preferences)
    +33612345678          a phone number: a leading `+`, stored in E.164 (`envoi.addresses.phone_e164`)
    user_42               anything else is a user id (the `userId` of in-app jobs, `metadata.userId`)

A number without `+` is a user id (numeric user ids are common); phone numbers are written in
international form here, as Twilio takes them.
"""

from __future__ import annotations

import re

from envoi.addresses import email_address, phone_e164
from envoi.validation import problem

__all__ = ["MAX_RECIPIENT_LENGTH", "recipient_key"]

#: The column's length (`recipient_preferences.recipient`), an email address's longest form.
MAX_RECIPIENT_LENGTH = 320
#: A user id as it goes into a URL path and a log line: printable, no spaces, no slash.
_USER_ID = re.compile(r"^[A-Za-z0-9_.:@|=+-]{1,255}$")


def recipient_key(value: str) -> str:
    """The stored form of a recipient; ValueError saying what is wrong (never quoting an address)."""
    text = value.strip()
    if not text:
        raise ValueError("must be an email address, a phone number (+33612345678) or a user id")
    found = problem(text)
    if found:
        raise ValueError(found[1])
    if len(text) > MAX_RECIPIENT_LENGTH:
        raise ValueError(f"must be at most {MAX_RECIPIENT_LENGTH} characters")
    if "@" in text:
        return email_address(text).lower()
    if text.startswith("+"):
        return phone_e164(text)
    if not _USER_ID.match(text):
        raise ValueError(
            "a user id may hold letters, digits and _ . : @ | = + - only (at most 255 characters)"
        )
    return text
