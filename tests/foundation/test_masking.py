"""Recipients as people and logs see them."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from envoi.masking import mask_dead_letter, mask_email, mask_payload, mask_phone, mask_text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+33612345678", "+33 6** ** ** 78"),
        ("whatsapp:+33612345678", "+33 6** ** ** 78"),
        ("+12015550123", "+1 2**-***-**23"),
        ("+447911123456", "+44 7*** ****56"),
        ("not a number 12345", "***45"),
        ("42", "***"),
    ],
)
def test_phone_keeps_country_first_digit_and_last_two(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_email_keeps_first_letter_and_domain() -> None:
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_email("not-an-email") == "***"


def test_payload_masks_recipients_at_any_depth_and_nothing_else() -> None:
    data = {"to": "jane@example.com", "message": "call +33612345678", "lead": [{"phone": "+33612345678"}]}
    assert mask_payload(data) == {
        "to": "j***@example.com",
        "message": "call +33612345678",
        "lead": [{"phone": "+33 6** ** ** 78"}],
    }


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (
            "The 'To' number +33612345678 is not a valid phone number.",
            "The 'To' number +33 6** ** ** 78 is not a valid phone number.",
        ),
        ("whatsapp:+33612345678 is not a WhatsApp user", "whatsapp:+33 6** ** ** 78 is not a WhatsApp user"),
        ("call +33 6 12 34 56 78 now", "call +33 6** ** ** 78 now"),
        ("The 'To' number 33612345678 is invalid.", "The 'To' number +33 6** ** ** 78 is invalid."),
        (
            "550 5.1.1 <jane.doe@example.com>: Recipient address rejected",
            "550 5.1.1 <j***@example.com>: Recipient address rejected",
        ),
        ("to=jane@example.com, cc=+447911123456", "to=j***@example.com, cc=+44 7*** ****56"),
    ],
)
def test_text_masks_every_address_and_number_it_quotes(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked


@pytest.mark.parametrize(
    "kept",
    [
        "Twilio said 21211: invalid 'To' number",
        "finishedOn 1700000000000, job 123456789, attempt 3",
        'File "/app/envoi/worker.py", line 1234, in run',
        "object at 0x7f12345678ab",
        "2026-01-15 10:00:00+00:00, 4.5.1, 3.14159265358",
        "dlq-retry-01JH2K3M4N5P6Q7R8S9T0V1W2X",
    ],
)
def test_text_keeps_ids_codes_and_times(kept: str) -> None:
    assert mask_text(kept) == kept


# Any code point, lone surrogates (half an emoji, as JavaScript's slice() leaves it) included.
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))


@given(any_text)
@settings(max_examples=300, deadline=None)
def test_text_masking_never_fails_on_any_string(text: str) -> None:
    masked = mask_text(text)
    assert isinstance(masked, str)
    assert mask_text(masked) == masked  # nothing left to mask
    if "@" not in text and not any(ch.isdigit() for ch in text):
        assert masked == text


@given(any_text, any_text)
@settings(max_examples=300, deadline=None)
def test_text_masking_hides_a_quoted_recipient_whatever_surrounds_it(before: str, after: str) -> None:
    assume(not any(s in before + after for s in ("jane.doe@", "612345678")))
    masked = mask_text(f"{before} jane.doe@example.com and +33612345678 {after}")
    assert "jane.doe@" not in masked
    assert "612345678" not in masked


def test_a_dead_letter_is_masked_in_payload_error_and_stack_traces() -> None:
    fields = {
        "id": "01JH2K3M4N5P6Q7R8S9T0V1W2X",
        "job_data": {"to": "jane@example.com", "message": "hi"},
        "error_message": "21211: The 'To' number +33612345678 is not valid (jane@example.com)",
        "stacktrace": ["Traceback ...\nDeliveryError: <jane@example.com> refused", "+33612345678"],
    }
    shown = mask_dead_letter(fields)
    assert "jane@example.com" not in str(shown) and "612345678" not in str(shown)
    assert shown["id"] == fields["id"] and shown["job_data"]["message"] == "hi"
    assert shown["error_message"].startswith("21211: ")
    assert fields["job_data"]["to"] == "jane@example.com"  # a copy: the row is left as it is
