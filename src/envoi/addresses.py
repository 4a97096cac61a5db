"""Recipients as the original system accepts them: phone numbers normalised to E.164, email addresses
checked for syntax, not for deliverability.

    phone_e164("33698765432")               -> "+33698765432"    (the original adds the missing "+")
    phone_e164("06 98 76 54 32")            -> "+33698765432"    with DEFAULT_PHONE_REGION=FR
    email_address("jane@mailpit.local")     -> "jane@mailpit.local"   refused with EMAIL_STRICT_DOMAINS=true

The two settings that change these answers are process-wide (`configure()`), because the validators run
where no settings object can be passed: inside pydantic models that FastAPI parses from request bodies,
and in the worker's job parsing. `envoi.runtime.Envoi` calls `configure()` with its settings; two `Envoi`
with different values in one process share the last one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import email_validator
import phonenumbers
from pydantic import AfterValidator, WithJsonSchema

__all__ = [
    "AddressRules",
    "EmailAddress",
    "configure",
    "email_address",
    "phone_e164",
    "rules",
]

#: What a refused number is told; the example is the form Twilio takes.
PHONE_REASON = "must be a phone number in international form such as +33612345678"
#: E.164's longest number, country code included.
E164_MAX_DIGITS = 15
#: The longest address SMTP carries (RFC 5321 path limit, as email-validator counts it).
MAX_EMAIL_LENGTH = 254
#: Names email-validator refuses whatever its options (its special-use list is global to the process)
#: but that development mail catchers answer to (RFC 6761 `localhost`, RFC 6762 `local`). `.test` needs
#: no such help: email-validator's own `test_environment` option lets it through.
_DEVELOPMENT_NAMES = ("localhost", "local")
#: The name such an address is checked under (`jane@mailpit.local` as `jane@mailpit.test`).
_STAND_IN = "test"


@dataclass(frozen=True, slots=True)
class AddressRules:
    #: ISO 3166 region national numbers are read in (DEFAULT_PHONE_REGION); None: international only.
    default_phone_region: str | None = None
    #: EMAIL_STRICT_DOMAINS: refuse what cannot be delivered on the public internet (`.test`, `.local`,
    #: `localhost`, dotless domains). Neither mode looks anything up in DNS.
    strict_email_domains: bool = False


_rules = AddressRules()


def configure(new: AddressRules) -> AddressRules:
    """Set the rules every validator in this process reads; returns the previous ones (for tests)."""
    global _rules
    previous, _rules = _rules, new
    return previous


def rules() -> AddressRules:
    return _rules


def phone_e164(value: str) -> str:
    """`value` as E.164, or `ValueError` when it cannot be a phone number.

    Read, in this order: as given when it starts with `+`; as a national number of
    DEFAULT_PHONE_REGION when one is set (`06 98 76 54 32`, `0033 6…`); with a `+` put in front, as the
    original system does before calling Twilio (`33698765432`). The first reading that is a valid number
    (by libphonenumber's ranges) wins; failing that, the first that is *possible* (a length the country
    uses). Possible is the floor rather than valid because libphonenumber's ranges lag behind
    allocations: a real number refused here would be lost, while a wrong one costs a single Twilio
    request answered 21211, a permanent failure recorded in the ledger.
    """
    text = value.strip()
    readings = []
    for candidate, region in _phone_readings(text):
        try:
            readings.append(phonenumbers.parse(candidate, region))
        except phonenumbers.NumberParseException:
            continue
    number = next((n for n in readings if phonenumbers.is_valid_number(n)), None)
    if number is None:
        # IS_POSSIBLE_LOCAL_ONLY (a number without its area code) cannot be dialled from abroad: refused.
        number = next((n for n in readings if _possible(n)), None)
    if number is None:
        raise ValueError(PHONE_REASON)
    e164 = _formatted(number)
    # libphonenumber deems some numbers of 16 digits possible (Germany's); E.164, and Twilio, stop at 15.
    # And it reads a run of zeros after the country code as "leading zeros", one fewer each time it
    # formats (+43000001 -> +4300001 -> +430001): an answer that would not read back as itself is
    # no one's number.
    if len(e164) > E164_MAX_DIGITS + 1 or _formatted(phonenumbers.parse(e164)) != e164:
        raise ValueError(PHONE_REASON)
    return e164


def _formatted(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _possible(number: phonenumbers.PhoneNumber) -> bool:
    reason = phonenumbers.is_possible_number_with_reason(number)
    return bool(reason == phonenumbers.ValidationResult.IS_POSSIBLE)


def _phone_readings(text: str) -> list[tuple[str, str | None]]:
    if text.startswith("+"):
        return [(text, None)]
    region = _rules.default_phone_region
    return ([(text, region)] if region else []) + [(f"+{text}", None)]


def email_address(value: str) -> str:
    """`value` normalised (domain lower-cased, display name dropped), or `ValueError` naming the fault."""
    value, strict = value.strip(), _rules.strict_email_domains
    try:
        return _validated(value, strict=strict)
    except email_validator.EmailNotValidError as exc:
        if strict or not _is_development_name(value):
            raise ValueError(f"value is not a valid email address: {exc}") from None
    return _development_address(value)


def _validated(value: str, *, strict: bool) -> str:
    checked = email_validator.validate_email(
        value,
        check_deliverability=False,
        globally_deliverable=strict,
        test_environment=not strict,
        allow_display_name=True,
    )
    return str(checked.normalized)


def _split(value: str) -> tuple[str, str, str]:
    """(everything up to the domain, the domain, what closes a `Name <address>` form)."""
    head, _, domain = value.rpartition("@")
    closing = ">" if domain.endswith(">") else ""
    return head, domain.removesuffix(">"), closing


def _is_development_name(value: str) -> bool:
    _, domain, _ = _split(value)
    return domain.lower().rsplit(".", 1)[-1] in _DEVELOPMENT_NAMES


def _development_address(value: str) -> str:
    head, domain, closing = _split(value)
    bare = f"{head.rpartition('<')[2]}@{domain}"
    if len(bare) > MAX_EMAIL_LENGTH:
        raise ValueError(f"value is not a valid email address: longer than {MAX_EMAIL_LENGTH} characters")
    base, dot, last = domain.rpartition(".")
    try:
        checked = _validated(f"{head}@{base}{dot}{_STAND_IN}{closing}", strict=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from None
    return checked.removesuffix(_STAND_IN) + last.lower()


#: An email address field: `email_address()` at validation, `format: email` in the OpenAPI schema.
EmailAddress = Annotated[
    str, AfterValidator(email_address), WithJsonSchema({"type": "string", "format": "email"})
]
