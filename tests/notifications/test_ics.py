"""The calendar invitation parses back with `icalendar` and says what the appointment is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from icalendar import Calendar

from envoi.notifications.ics import build_invitation, event_uid
from tests.notifications.factories import CLOSER_EMAIL, LEAD_EMAIL, make_appointment


def parse(content: bytes) -> tuple[Calendar, Any]:
    calendar = Calendar.from_ical(content)
    [event] = calendar.walk("VEVENT")
    return calendar, event


def test_invitation_round_trips() -> None:
    appointment = make_appointment(scheduledAt="2026-03-12T14:30:00+01:00", sequence=2)
    content = build_invitation(
        appointment,
        summary="Rendez-vous avec Jane Doe",
        description="45 minutes, ligne 2",
        organizer_fallback="x",
    )
    assert content.startswith(b"BEGIN:VCALENDAR\r\n")
    calendar, event = parse(content)
    assert str(calendar["METHOD"]) == "REQUEST" and str(calendar["VERSION"]) == "2.0"
    assert str(event["UID"]) == event_uid("apt-1")
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start == datetime(2026, 3, 12, 13, 30, tzinfo=UTC) and start.utcoffset() == timedelta(0)
    assert end - start == timedelta(minutes=45)
    assert b"DTSTART:20260312T133000Z" in content
    assert str(event["SUMMARY"]) == "Rendez-vous avec Jane Doe"
    assert str(event["DESCRIPTION"]) == "45 minutes, ligne 2"
    assert str(event["LOCATION"]) == str(event["URL"]) == "https://meet.example.com/abc-defg"
    assert str(event["ORGANIZER"]) == f"mailto:{CLOSER_EMAIL}"
    assert event["ORGANIZER"].params["CN"] == "Jane Doe"
    assert str(event["ATTENDEE"]) == f"mailto:{LEAD_EMAIL}"
    assert event["ATTENDEE"].params["RSVP"] == "TRUE"
    assert int(event["SEQUENCE"]) == 2
    [alarm] = event.walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(minutes=-15)


def test_uid_is_stable_and_organizer_falls_back_to_the_sender() -> None:
    first = make_appointment(visioUrl=None)
    moved = make_appointment(starts_in=timedelta(days=5), visioUrl=None)
    moved.closer.email = None
    a = parse(build_invitation(first, summary="s", description="d", organizer_fallback="x"))[1]
    b = parse(
        build_invitation(
            moved, summary="s", description="d", organizer_fallback="Acme <no-reply@acme.example>"
        )
    )[1]
    assert str(a["UID"]) == str(b["UID"])
    assert a.decoded("DTSTART") != b.decoded("DTSTART")
    assert str(b["ORGANIZER"]) == "mailto:no-reply@acme.example"
    assert "LOCATION" not in b and "URL" not in b
