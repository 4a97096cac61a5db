"""Masking for logs and for what people see: `j***@example.com`, `+33 6** ** ** 78`.

- `mask_email`, `mask_phone`, `mask_recipient`: one value known to be an address or a number;
- `mask_payload`: job data, where recipients sit under known keys (`to`, `email`, `phone`, ...);
- `mask_text`: free text (a provider's error, a stack trace) that may quote addresses and numbers;
- `mask_dead_letter`: a dead letter as shown to a person (admin API, `envoi dlq`): payload, error and
  stack traces. Every door that shows one goes through it;
- `MaskingFilter`: the last door, on the log handlers of envoi's processes: every line (envoi's,
  bullmq's, uvicorn's access log with its paths) and every traceback goes out through `mask_text`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import phonenumbers

_EMAIL = re.compile(r"^([^@\s])[^@\s]*(@[^@\s]+)$")
#: An address or an international number inside free text (an SMTP reply or a Twilio error quotes them).
#: Keys whose values are recipients, in job data (camelCase, as Node producers send them) and ledgers.
RECIPIENT_KEYS = frozenset({"to", "email", "phone", "recipient", "from"})

#: Addresses and numbers inside free text, in one pass (so a masked value is never scanned again):
#: - an address (the look-behind and the possessive quantifiers keep the scan linear on long runs);
#: - `+` and at least 6 digits, single separators allowed (`+33 6 12 34 56 78`, `whatsapp:+336...`):
#:   masked whether or not it is a valid number (a provider quotes the invalid ones too);
#: - a bare run of 8 to 15 digits (E.164 without its `+`, as some providers quote it), masked only when
#:   phonenumbers reads `+digits` as a valid number: ids, timestamps and error codes stay readable.
_IN_TEXT = re.compile(
    r"(?P<email>(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)+)"
    r"|(?P<intl>(?:whatsapp:)?\+\d(?:[ .()\-]?\d){5,})"
    r"|(?P<digits>(?<![\w+])(?<!\d\.)\d{8,15}(?!\w|\.\d))"
)
_WHATSAPP = "whatsapp:"


def mask_email(value: str) -> str:
    match = _EMAIL.match(value.strip())
    return f"{match.group(1)}***{match.group(2)}" if match else "***"


def mask_phone(value: str) -> str:
    """Keep the country code, the first national digit and the last two; star the rest."""
    raw = value.removeprefix(_WHATSAPP)
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


def _is_phone_number(digits: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None)))
    except phonenumbers.NumberParseException:
        return False


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if match.group("email") is not None:
        return mask_email(found)
    if match.group("intl") is not None:
        prefix = _WHATSAPP if found.startswith(_WHATSAPP) else ""
        return prefix + mask_phone(found.removeprefix(_WHATSAPP))
    return mask_phone("+" + found) if _is_phone_number(found) else found


def mask_text(text: str) -> str:
    """`text` with every email address and phone number in it masked; any other character is kept.

    Total on `str`: any string (lone surrogates included) gives a string, never an exception.
    """
    return _IN_TEXT.sub(_mask_match, text)


def mask_dead_letter(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a dead letter's fields (`row_as_dict`'s keys) fit to show a person: recipients masked
    in `job_data`, addresses and numbers masked in `error_message` and every `stacktrace` entry."""
    shown = dict(fields)
    if "job_data" in shown:
        shown["job_data"] = mask_payload(shown["job_data"])
    if isinstance(shown.get("error_message"), str):
        shown["error_message"] = mask_text(shown["error_message"])
    if isinstance(shown.get("stacktrace"), list):
        shown["stacktrace"] = [mask_text(s) if isinstance(s, str) else s for s in shown["stacktrace"]]
    return shown


class MaskingFilter(logging.Filter):
    """Masks addresses and phone numbers in a log record's message, arguments and traceback, whoever
    logged it (a provider's error quotes the recipient; a library logs it as it is). Arguments are masked
    one by one, so formatters that read them (uvicorn's access log) still work."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _masked_arg(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def _masked_arg(arg: object) -> object:
    # Numbers stay numbers (`%d`); anything else is masked as the text `%s` would print.
    if arg is None or isinstance(arg, int | float):
        return arg
    return mask_text(str(arg))
