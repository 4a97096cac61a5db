"""Recipients as the original system sends them: phone numbers with or without `+` (national ones with
DEFAULT_PHONE_REGION) normalised to E.164, refused only when they cannot be phone numbers; email
addresses checked for syntax, with development names (`.test`, `.local`, `localhost`) accepted unless
EMAIL_STRICT_DOMAINS asks for names deliverable on the internet."""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from envoi import addresses
from envoi.addresses import AddressRules, email_address, phone_e164
from envoi.errors import InvalidJobDataError
from envoi.notifications.jobs import SendEmailJob, parse_job
from envoi.notifications.models import Appointment
from tests.notifications.factories import appointment_data


@pytest.fixture
def region_fr() -> Iterator[None]:
    addresses.configure(AddressRules(default_phone_region="FR"))
    yield
    addresses.configure(AddressRules())


@pytest.fixture
def strict() -> Iterator[None]:
    addresses.configure(AddressRules(strict_email_domains=True))
    yield
    addresses.configure(AddressRules())


# --- phone numbers ---------------------------------------------------------------------------------

#: Each region's example mobile number, as libphonenumber gives it (some regions have none).
EXAMPLES = sorted(
    {
        region: phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        if (number := phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE))
    }.items()
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("33698765432", "+33698765432"),  # the original system's form: it adds the "+"
        ("+33698765432", "+33698765432"),
        ("+33 6 98 76 54 32", "+33698765432"),
        ("33 6 98 76 54 32", "+33698765432"),
        (" +1 (415) 523-8886 ", "+14155238886"),
    ],
)
def test_international_numbers_with_or_without_plus(raw: str, e164: str) -> None:
    assert phone_e164(raw) == e164


@pytest.mark.parametrize(
    "raw", ["06 98 76 54 32", "0698765432", "0033 6 98 76 54 32", "33698765432", "+33698765432"]
)
def test_national_numbers_with_a_default_region(region_fr: None, raw: str) -> None:
    assert phone_e164(raw) == "+33698765432"


def test_a_foreign_number_without_plus_is_still_read_with_a_default_region(region_fr: None) -> None:
    assert phone_e164("447911123456") == "+447911123456"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "hello",
        "06 98 76 54 32",
        "0698765432",
        "+331",
        "+3361234",
        "+999 1234 5678",
        "12",
        "+33 6" + "9" * 30,
    ],
)
def test_what_cannot_be_a_phone_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"\+33612345678"):
        phone_e164(raw)


def test_a_possible_number_unknown_to_the_ranges_is_accepted() -> None:
    """+33 0… has the length of a French number but no range: Twilio has the last word (21211)."""
    number = phonenumbers.parse("+33012345678")
    assert phonenumbers.is_possible_number(number) and not phonenumbers.is_valid_number(number)
    assert phone_e164("+33012345678") == "+33012345678"


def test_every_region_example_round_trips_with_or_without_plus_and_nationally() -> None:
    assert len(EXAMPLES) > 200
    for region, e164 in EXAMPLES:
        assert phone_e164(e164) == e164, region
        assert phone_e164(e164[1:]) == e164, region
        national = phonenumbers.format_number(
            phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL
        )
        addresses.configure(AddressRules(default_phone_region=region))
        assert phone_e164(national) == e164, region
        addresses.configure(AddressRules())


E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


@given(st.from_regex(r"\A\+?[0-9 ().-]{0,22}\Z"), st.sampled_from([None, "FR", "US", "BE"]))
# What it found: zeros libphonenumber drops one by one as it formats, and a 16-digit German number.
@example("+4900000", None)
@example("43000001", None)
@example("4910000000000000", None)
def test_whatever_is_accepted_is_possible_e164_and_stable(raw: str, region: str | None) -> None:
    addresses.configure(AddressRules(default_phone_region=region))
    try:
        try:
            e164 = phone_e164(raw)
        except ValueError:
            return
        assert E164.match(e164)
        assert phonenumbers.is_possible_number(phonenumbers.parse(e164))
        assert phone_e164(e164) == e164  # normalising again changes nothing
    finally:
        addresses.configure(AddressRules())


@given(st.text(alphabet=st.characters(exclude_categories=["Nd"]), max_size=40))
def test_text_without_digits_is_never_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        phone_e164(text)


def test_job_and_flow_models_use_the_same_rule(region_fr: None) -> None:
    job = parse_job("SEND_SMS", {"to": "06 98 76 54 32", "message": "hi"})
    whatsapp = parse_job("SEND_WHATSAPP", {"to": "whatsapp:33698765432", "message": "hi"})
    data = appointment_data()
    data["lead"]["phone"] = "06 12 34 56 78"
    assert job.to == whatsapp.to == "+33698765432"  # type: ignore[union-attr]
    assert Appointment.model_validate(data).lead.phone == "+33612345678"


# --- email addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("jane@mailpit.test", "jane@mailpit.test"),
        ("jane@mailhog.local", "jane@mailhog.local"),
        ("jane@localhost", "jane@localhost"),
        ("jane@app.localhost", "jane@app.localhost"),
        ("jane@MAILPIT.LOCAL", "jane@mailpit.local"),
        ("Jane Martin <jane@mailpit.local>", "jane@mailpit.local"),
        ("  jane@example.com ", "jane@example.com"),
        ("jane@café.local", "jane@café.local"),
    ],
)
def test_development_addresses_are_accepted(raw: str, normalised: str) -> None:
    assert email_address(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "jane",
        "jane@",
        "@mailpit.local",
        "jane@@mailpit.local",
        "jane@.local",
        "jane@-x.local",
        "jane@x.invalid",  # special-use names other than the development ones stay refused
        "jane@x.onion",
        "jane@x.local\r\nBcc: everyone@x.local",  # header injection
        "jane@x.test>",
        "x" * 250 + "@a.local",
    ],
)
def test_what_is_not_an_address_is_refused_in_both_modes(raw: str) -> None:
    with pytest.raises(ValueError, match="not a valid email address"):
        email_address(raw)
    addresses.configure(AddressRules(strict_email_domains=True))
    with pytest.raises(ValueError, match="not a valid email address"):
        email_address(raw)


@pytest.mark.parametrize(
    "raw", ["jane@mailpit.test", "jane@mailhog.local", "jane@localhost", "jane@intranet"]
)
def test_strict_domains_refuse_development_names(strict: None, raw: str) -> None:
    with pytest.raises(ValueError, match="not a valid email address"):
        email_address(raw)


def test_strict_domains_accept_internet_addresses(strict: None) -> None:
    assert email_address("Jane@Example.COM") == "Jane@example.com"


def test_the_email_job_follows_the_setting() -> None:
    data = {"to": "jane@mailpit.local", "subject": "s", "html": "h"}
    job = parse_job("SEND_EMAIL", data)
    assert isinstance(job, SendEmailJob) and job.to == "jane@mailpit.local"
    addresses.configure(AddressRules(strict_email_domains=True))
    with pytest.raises(InvalidJobDataError) as refused:
        parse_job("SEND_EMAIL", data)
    assert list(refused.value.fields) == ["to"]
