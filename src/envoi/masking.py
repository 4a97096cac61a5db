"""Masking for logs and payloads shown to people: `j***@example.com`, `+33 6** ** ** 78`."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

_EMAIL = re.compile(r"^([^@\s])[^@\s]*(@[^@\s]+)$")
#: An address inside free text (an SMTP reply quotes the recipient).
_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: Keys whose values are recipients, in job data (camelCase, as Node producers send them) and ledgers.
RECIPIENT_KEYS = frozenset({"to", "email", "phone", "recipient", "from"})


def mask_email(value: str) -> str:
    match = _EMAIL.match(value.strip())
    return f"{match.group(1)}***{match.group(2)}" if match else "***"


def mask_phone(value: str) -> str:
    """Keep the country code, the first national digit and the last two; star the rest."""
    raw = value.removeprefix("whatsapp:")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        digits = re.sub(r"\D", "", raw)
        return f"***{digits[-2:]}" if len(digits) > 2 else "***"
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    country = f"+{number.country_code}"
    national = formatted.removeprefix(country)
    digit_positions = [i for i, ch in enumerate(national) if ch.isdigit()]
    keep = set(digit_positions[:1] + digit_positions[-2:])
    masked = "".join(ch if (not ch.isdigit() or i in keep) else "*" for i, ch in enumerate(national))
    # "+33 6 ** ** ** 78" reads as "+33 6** ** ** 78": a lone first digit joins the stars after it.
    return country + re.sub(r"^ (\d) \*", r" \1*", masked)


def mask_recipient(value: str) -> str:
    return mask_email(value) if "@" in value else mask_phone(value)


def mask_payload(data: Any) -> Any:
    """A copy of job data with every recipient masked, at any depth."""
    if isinstance(data, dict):
        return {
            key: mask_recipient(val) if key in RECIPIENT_KEYS and isinstance(val, str) else mask_payload(val)
            for key, val in data.items()
        }
    if isinstance(data, list):
        return [mask_payload(item) for item in data]
    return data


def mask_text(text: str) -> str:
    """Free text (an error message, a stack trace) with every email address in it masked."""
    return _EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group(0)), text)
