"""The appointment a flow is about, as the API receives it (camelCase on the wire, snake_case in Python).

Validation errors name the field by its wire name (`lead.phone`, `scheduledAt`), so the HTTP layer can
hand pydantic's errors back as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, HttpUrl
from pydantic.alias_generators import to_camel

from envoi.addresses import EmailAddress
from envoi.notifications.jobs import TimeZoneName, e164
from envoi.validation import CleanInput

#: The locales with templates (`envoi.config.LOCALES`), spelled out so the OpenAPI schema lists them.
Locale = Literal["fr", "en"]


Phone = Annotated[str, AfterValidator(e164)]
Name = Annotated[str, Field(min_length=1, max_length=100)]


class _Wire(CleanInput):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, str_strip_whitespace=True, extra="forbid"
    )


class Lead(_Wire):
    first_name: Name
    email: EmailAddress
    phone: Phone | None = None


class Closer(_Wire):
    first_name: Name
    last_name: Name
    email: EmailAddress | None = None
    phone: Phone | None = None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def _plausible_year(value: datetime) -> datetime:
    # Reminder arithmetic (scheduledAt - 24 h) and the ICS writer overflow next to years 1 and 9999.
    if not 1970 <= value.year <= 2999:
        raise ValueError("must be between the years 1970 and 2999")
    return value


class Appointment(_Wire):
    #: Goes into job ids and idempotency keys (`reminder:{appointmentId}:day`): no colons, no spaces.
    appointment_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    #: Naive datetimes are refused: a reminder an hour off is worse than a 422.
    scheduled_at: Annotated[AwareDatetime, AfterValidator(_plausible_year)]
    duration_minutes: int = Field(gt=0, le=24 * 60)
    visio_url: HttpUrl | None = None
    #: The lead's time zone and language; the settings' defaults when absent.
    timezone: TimeZoneName | None = None
    locale: Locale | None = None
    #: RFC 5545 SEQUENCE of the calendar invitation: the caller bumps it when the appointment changes,
    #: so calendars replace the event instead of ignoring the update.
    sequence: int = Field(0, ge=0, le=2**31 - 1)
    lead: Lead
    closer: Closer
