"""The calendar invitation attached to an appointment confirmation (RFC 5545, iTIP METHOD:REQUEST).

The UID depends on the appointment only, so a re-sent invitation for a moved appointment updates the
event already in the lead's calendar instead of adding a second one; `Appointment.sequence` tells the
calendar which version is newer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from icalendar import Alarm, Calendar, Event, vCalAddress, vText

from envoi.notifications.models import Appointment

PRODID = "-//envoi//Appointment//EN"
#: The MIME type a mail client needs to offer "accept / decline" rather than a plain download.
CONTENT_TYPE = "text/calendar; method=REQUEST; charset=UTF-8"
FILENAME = "invitation.ics"


def event_uid(appointment_id: str) -> str:
    return f"appointment-{appointment_id}@envoi"


def _address(email: str, name: str, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["CN"] = vText(name)
    for key, value in params.items():
        address.params[key] = vText(value)
    return address


def build_invitation(
    appointment: Appointment,
    *,
    summary: str,
    description: str,
    organizer_fallback: str,
    now: datetime | None = None,
) -> bytes:
    """The `.ics` bytes. `organizer_fallback` (EMAIL_FROM) stands in for a closer without an email:
    iTIP requires an ORGANIZER on a REQUEST."""
    start = appointment.scheduled_at.astimezone(UTC)
    closer, lead = appointment.closer, appointment.lead
    visio = str(appointment.visio_url) if appointment.visio_url else None

    event = Event()
    event.add("uid", event_uid(appointment.appointment_id))
    event.add("dtstamp", (now or datetime.now(UTC)).astimezone(UTC))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=appointment.duration_minutes))
    event.add("summary", summary)
    event.add("description", description)
    if visio:
        event.add("location", visio)
        event.add("url", visio)
    organizer_email = closer.email or parseaddr(organizer_fallback)[1]
    event.add("organizer", _address(organizer_email, closer.full_name))
    event.add(
        "attendee",
        _address(lead.email, lead.first_name, ROLE="REQ-PARTICIPANT", PARTSTAT="NEEDS-ACTION", RSVP="TRUE"),
    )
    event.add("status", "CONFIRMED")
    event.add("sequence", appointment.sequence)

    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", summary)
    alarm.add("trigger", timedelta(minutes=-15))
    event.add_component(alarm)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "REQUEST")
    calendar.add_component(event)
    return bytes(calendar.to_ical())
