"""The catalogue of message templates (the variables each receives) and previews with sample data, for
`envoi templates list|preview` and the admin page's Templates tab. docs/templates.md documents the same
catalogue; a test keeps the two together and renders every message with exactly these variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from envoi.config import LOCALES, Settings
from envoi.notifications.models import Appointment
from envoi.notifications.rendering import Renderer
from envoi.notifications.service import appointment_context

#: Every template receives these (the brand from the settings, the recipient's locale and time zone).
COMMON_VARIABLES = ("brand", "brand_url", "brand_logo_url", "support_email", "locale", "timezone")
APPOINTMENT_VARIABLES = (
    "first_name",
    "closer_name",
    "closer_email",
    "closer_phone",
    "starts_at",
    "duration_minutes",
    "visio_url",
    "confirm_url",
    "reschedule_url",
)
#: Shared by the messages: the HTML layout, its macros and the text emails' footer.
LAYOUT = ("base.html", "macros.html", "en/footer.txt", "fr/footer.txt")


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    #: An email is `{name}.subject.txt`, `{name}.html` and `{name}.txt`; a text is `{name}.txt`.
    kind: Literal["email", "text"]
    #: What sends it.
    sent_by: str
    variables: tuple[str, ...]

    def files(self, locale: str) -> list[str]:
        if self.kind == "text":
            return [f"{locale}/{self.name}.txt"]
        return [f"{locale}/{self.name}.{suffix}" for suffix in ("subject.txt", "html", "txt")]


_CONFIRMATION = "POST /v1/flows/appointment-confirmation"
_REMINDERS = "PUT /v1/appointments/{id}/reminders"
MESSAGES: tuple[Message, ...] = (
    Message(
        "verification",
        "email",
        "POST /v1/flows/verification-email",
        ("first_name", "code", "expires_minutes"),
    ),
    Message(
        "invitation",
        "email",
        "POST /v1/flows/invitation-email",
        ("organization_name", "inviter_name", "role", "invite_url", "expires_days"),
    ),
    Message(
        "abandon_recovery",
        "email",
        "POST /v1/flows/abandon-recovery (one per ABANDON_RECOVERY_SCHEDULE step)",
        ("first_name", "resume_url", "step", "steps", "offer", "unsubscribe_url"),
    ),
    Message(
        "inbox_digest",
        "email",
        "DIGEST_WINDOW: in-app notifications still unread when the window ends",
        ("items", "count", "more"),
    ),
    Message("appointment_confirmation", "email", _CONFIRMATION, APPOINTMENT_VARIABLES),
    Message("appointment_ics_summary", "text", f"{_CONFIRMATION} (.ics SUMMARY)", APPOINTMENT_VARIABLES),
    Message(
        "appointment_ics_description", "text", f"{_CONFIRMATION} (.ics DESCRIPTION)", APPOINTMENT_VARIABLES
    ),
    Message("appointment_confirmation_sms", "text", f"{_CONFIRMATION} (SMS_ENABLED)", APPOINTMENT_VARIABLES),
    Message(
        "appointment_confirmation_whatsapp",
        "text",
        f"{_CONFIRMATION} (WHATSAPP_ENABLED)",
        APPOINTMENT_VARIABLES,
    ),
    Message(
        "appointment_followup_whatsapp",
        "text",
        f"{_CONFIRMATION} (WHATSAPP_ENABLED, 10 minutes later)",
        APPOINTMENT_VARIABLES,
    ),
    Message("reminder_day", "email", f"{_REMINDERS} (24 h before)", APPOINTMENT_VARIABLES),
    Message("reminder_day_sms", "text", f"{_REMINDERS} (24 h before, SMS_ENABLED)", APPOINTMENT_VARIABLES),
    Message("reminder_hour", "email", f"{_REMINDERS} (1 h before)", APPOINTMENT_VARIABLES),
    Message("reminder_hour_sms", "text", f"{_REMINDERS} (1 h before, SMS_ENABLED)", APPOINTMENT_VARIABLES),
)
BY_NAME = {message.name: message for message in MESSAGES}


@dataclass(frozen=True, slots=True)
class Preview:
    message: Message
    locale: str
    #: None for a text message.
    subject: str | None
    text: str
    #: None for a text message.
    html: str | None


def sample_appointment(settings: Settings) -> Appointment:
    return Appointment.model_validate(
        {
            "appointmentId": "apt_42",
            "scheduledAt": datetime(2026, 12, 3, 14, 30, tzinfo=ZoneInfo(settings.default_timezone)),
            "durationMinutes": 30,
            "visioUrl": "https://meet.example.com/apt_42",
            "lead": {"firstName": "Jane", "email": "jane@example.com", "phone": "+33612345678"},
            "closer": {
                "firstName": "Paul",
                "lastName": "Martin",
                "email": "paul@example.com",
                "phone": "+33698765432",
            },
        }
    )


def sample_context(message: Message, settings: Settings) -> dict[str, Any]:
    """Sample values for exactly the variables `message` receives (beside the common ones)."""
    frontend = settings.frontend_url.rstrip("/")
    samples: dict[str, Any] = {
        "code": "482913",
        "expires_minutes": settings.verification_code_ttl_min,
        "organization_name": "Northwind",
        "inviter_name": "Paul Martin",
        "role": "admin",
        "invite_url": f"{frontend}/invite/inv_7f3a",
        "expires_days": settings.invitation_ttl_days,
        "resume_url": "https://app.example.com/resume/42",
        # The last step of three, the one that carries the offer.
        "step": 3,
        "steps": 3,
        "offer": "-20 % if you book before Friday",
        "unsubscribe_url": f"{settings.api_url.rstrip('/')}/v1/unsubscribe/sample-token",
        "items": [
            {"title": "New lead", "message": "Jane Doe filled in the demo form"},
            {"title": "Appointment booked", "message": "Paul Martin booked a call"},
        ],
        "count": 2,
        "more": 0,
        **appointment_context(
            sample_appointment(settings), default_timezone=settings.default_timezone, frontend_url=frontend
        ),
    }
    samples.pop("timezone")  # a common variable: the renderer's default unless an appointment says
    return {name: samples[name] for name in message.variables}


def preview(renderer: Renderer, settings: Settings, name: str, locale: str) -> Preview:
    """`name` rendered in `locale` with sample data; `KeyError` for an unknown name, `ValueError` for an
    unknown locale, `TemplateError` when the template fails."""
    message = BY_NAME[name]
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}")
    context = sample_context(message, settings)
    if message.kind == "text":
        return Preview(message, locale, None, renderer.render_text(name, locale, **context), None)
    rendered = renderer.render(name, locale, **context)
    return Preview(message, locale, rendered.subject, rendered.text, rendered.html)
