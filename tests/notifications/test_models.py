"""The Appointment request model: camelCase on the wire, errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from envoi.notifications.models import Appointment, Closer, Lead
from tests.notifications.factories import appointment_data


def error_fields(data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Appointment.model_validate(data)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


def test_camel_case_and_snake_case_both_populate() -> None:
    camel = Appointment.model_validate(appointment_data())
    snake = Appointment(
        appointment_id="apt-1",
        scheduled_at=camel.scheduled_at,
        duration_minutes=45,
        lead=Lead(first_name="Léa", email="lea@example.com"),
        closer=Closer(first_name="Jane", last_name="Doe"),
    )
    assert camel.lead.first_name == snake.lead.first_name == "Léa"
    assert camel.closer.full_name == "Jane Doe"
    assert snake.locale is None and snake.timezone is None and snake.visio_url is None


def test_naive_datetime_is_refused() -> None:
    fields = error_fields(appointment_data(scheduledAt="2026-03-12T14:30:00"))
    assert list(fields) == ["scheduledAt"]
    assert "timezone" in fields["scheduledAt"]


def test_aware_datetime_keeps_its_instant() -> None:
    appointment = Appointment.model_validate(appointment_data(scheduledAt="2026-03-12T14:30:00+01:00"))
    assert appointment.scheduled_at.astimezone(UTC) == datetime(2026, 3, 12, 13, 30, tzinfo=UTC)


def test_phone_numbers_are_checked_and_normalised_to_e164() -> None:
    data = appointment_data()
    data["lead"] = {**data["lead"], "phone": "+33 6 12 34 56 78"}
    assert Appointment.model_validate(data).lead.phone == "+33612345678"
    data["lead"]["phone"] = "0612345678"
    data["closer"] = {**data["closer"], "phone": "+331"}
    fields = error_fields(data)
    assert set(fields) == {"lead.phone", "closer.phone"}
    assert "+33612345678" in fields["lead.phone"]


def test_locale_timezone_and_email_errors_name_their_field() -> None:
    data = appointment_data(locale="de", timezone="Mars/Olympus_Mons")
    data["lead"] = {**data["lead"], "email": "not-an-email"}
    fields = error_fields(data)
    assert set(fields) == {"locale", "timezone", "lead.email"}
    assert "'fr'" in fields["locale"] and "'en'" in fields["locale"]
    assert "Mars/Olympus_Mons" in fields["timezone"]


@pytest.mark.parametrize(
    "zone",
    [
        # Found by schemathesis: ZoneInfo opened a file named after it and raised OSError (a 500).
        "T\u0335\u0330o i\u0332nvoke the hive-mind " * 3,
        "x" * 300,
        "../../../../etc/passwd",
        "Europe/Paris\x00",
        "",
    ],
)
def test_a_hostile_time_zone_is_a_field_error(zone: str) -> None:
    fields = error_fields(appointment_data(timezone=zone))
    assert set(fields) == {"timezone"}


def test_known_zones_are_accepted() -> None:
    for zone in ("Europe/Paris", "UTC", "America/Argentina/Buenos_Aires"):
        assert Appointment.model_validate(appointment_data(timezone=zone)).timezone == zone


def test_missing_and_unknown_fields() -> None:
    data = appointment_data(surprise=1)
    del data["durationMinutes"]
    data["closer"] = {"firstName": "Jane"}
    fields = error_fields(data)
    assert set(fields) == {"durationMinutes", "closer.lastName", "surprise"}


def test_appointment_id_cannot_break_job_ids() -> None:
    assert set(error_fields(appointment_data(appointmentId="a:b"))) == {"appointmentId"}
    assert set(error_fields(appointment_data(durationMinutes=0))) == {"durationMinutes"}
