"""Appointments for the notification tests, as the API would receive them (camelCase)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from envoi.notifications.models import Appointment

LEAD_EMAIL = "lea@example.com"
LEAD_PHONE = "+33612345678"
CLOSER_EMAIL = "jane.doe@example.com"
#: Settings that turn SMS and WhatsApp on without a Twilio server (for tests that only enqueue).
TWILIO = {
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "token",
    "twilio_phone_number": "+15005550006",
    "twilio_whatsapp_number": "+14155238886",
}


def appointment_data(*, starts_in: timedelta = timedelta(days=3), **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "appointmentId": "apt-1",
        "scheduledAt": (datetime.now(UTC) + starts_in).replace(microsecond=0).isoformat(),
        "durationMinutes": 45,
        "visioUrl": "https://meet.example.com/abc-defg",
        "timezone": "Europe/Paris",
        "locale": "fr",
        "lead": {"firstName": "Léa", "email": LEAD_EMAIL, "phone": LEAD_PHONE},
        "closer": {"firstName": "Jane", "lastName": "Doe", "email": CLOSER_EMAIL, "phone": "+33698765432"},
    }
    data.update(overrides)
    return data


def make_appointment(*, starts_in: timedelta = timedelta(days=3), **overrides: Any) -> Appointment:
    return Appointment.model_validate(appointment_data(starts_in=starts_in, **overrides))
