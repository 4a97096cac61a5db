"""Recipients as people and logs see them."""

from __future__ import annotations

import pytest

from envoi.masking import mask_email, mask_payload, mask_phone


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
