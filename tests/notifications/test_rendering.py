"""Templates: both locales complete, dates in the recipient's zone and language, HTML escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.dates import format_date

from envoi.notifications.rendering import BUILTIN_TEMPLATES, Renderer

STARTS_AT = datetime(2026, 3, 12, 13, 30, tzinfo=UTC)  # 14:30 in Paris, 09:30 in New York
EMAILS = (
    "verification",
    "invitation",
    "abandon_recovery",
    "appointment_confirmation",
    "reminder_day",
    "reminder_hour",
)
TEXTS = (
    "appointment_confirmation_sms",
    "appointment_confirmation_whatsapp",
    "appointment_followup_whatsapp",
    "reminder_day_sms",
    "reminder_hour_sms",
    "appointment_ics_summary",
    "appointment_ics_description",
)
CONTEXT = {
    "brand": "Acme",
    "first_name": "Léa",
    "code": "482913",
    "expires_minutes": 15,
    "organization_name": "Acme & Co",
    "inviter_name": "Bob",
    "invite_url": "https://app.example.com/invite/tok",
    "role": "closer",
    "expires_days": 7,
    "resume_url": "https://app.example.com/forms/x",
    "step": 1,
    "steps": 3,
    "offer": None,
    "starts_at": STARTS_AT,
    "closer_name": "Jane Doe",
    "closer_email": "jane@example.com",
    "closer_phone": "+33698765432",
    "duration_minutes": 45,
    "visio_url": "https://meet.example.com/abc",
    "confirm_url": "https://app.example.com/appointments/1/confirm",
    "reschedule_url": "https://app.example.com/appointments/1/reschedule",
}


def relative(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_every_template_exists_in_every_locale() -> None:
    fr, en = relative(BUILTIN_TEMPLATES / "fr"), relative(BUILTIN_TEMPLATES / "en")
    assert fr == en
    for name in EMAILS:
        assert {f"{name}.subject.txt", f"{name}.html", f"{name}.txt"} <= fr
    assert {f"{name}.txt" for name in TEXTS} <= fr


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("template", EMAILS)
def test_every_email_renders_in_both_locales(template: str, locale: str) -> None:
    rendered = Renderer().render(template, locale, **CONTEXT)
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.html.startswith("<!DOCTYPE html>") and f'<html lang="{locale}">' in rendered.html
    assert "Acme" in rendered.html and "Acme" in rendered.text
    assert "<" not in rendered.text, "the text version carries no markup"


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("template", TEXTS)
def test_every_text_message_renders_in_both_locales(template: str, locale: str) -> None:
    text = Renderer().render_text(template, locale, **CONTEXT)
    assert text == text.strip() and "Jane Doe" in text


def test_dates_follow_the_locale_and_the_time_zone() -> None:
    renderer = Renderer(default_timezone="Europe/Paris")
    fr = renderer.render("appointment_confirmation", "fr", **CONTEXT)
    assert fr.subject == "Rendez-vous confirmé le 12 mars 2026 à 14:30 (UTC+1)"
    assert "jeudi 12 mars 2026 à 14:30 (heure normale d\u2019Europe centrale)" in fr.text
    en = renderer.render("appointment_confirmation", "en", **{**CONTEXT, "timezone": "America/New_York"})
    # New York is on summer time from March 8, 2026; the subject is folded to plain spaces.
    assert en.subject == "Appointment confirmed for March 12, 2026 at 9:30 AM (UTC-4)"
    assert "Thursday, March 12, 2026 at 9:30\u202fAM (Eastern Daylight Time)" in en.text


def test_the_local_date_is_used_not_the_utc_one() -> None:
    late = datetime(2026, 3, 12, 23, 30, tzinfo=UTC)  # already Friday in Paris
    text = Renderer().render_text("appointment_followup_whatsapp", "fr", **{**CONTEXT, "starts_at": late})
    assert format_date(datetime(2026, 3, 13).date(), "full", locale="fr") in text
    assert "00:30" in text


def test_text_messages_use_plain_spaces() -> None:
    sms = Renderer().render_text("reminder_hour_sms", "en", **CONTEXT)
    assert "2:30 PM" in sms and "\u202f" not in sms


def test_user_text_is_escaped_in_html_only() -> None:
    context = {**CONTEXT, "first_name": "<script>alert(1)</script>", "organization_name": 'A "B" & <C>'}
    verification = Renderer().render("verification", "en", **context)
    assert "<script>" not in verification.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in verification.html
    assert "<script>alert(1)</script>" in verification.text
    invitation = Renderer().render("invitation", "fr", **context)
    assert "A &#34;B&#34; &amp; &lt;C&gt;" in invitation.html
    assert invitation.subject == 'Invitation à rejoindre A "B" & <C> sur Acme'


def test_a_subject_cannot_smuggle_a_header() -> None:
    rendered = Renderer().render(
        "invitation", "en", **{**CONTEXT, "organization_name": "X\r\nBcc: all@example.com"}
    )
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_optional_parts_disappear() -> None:
    context = {**CONTEXT, "visio_url": None, "closer_email": None, "closer_phone": None}
    rendered = Renderer().render("appointment_confirmation", "fr", **context)
    assert "visioconférence" not in rendered.html.lower()
    assert "Contact de" not in rendered.text


def test_unknown_locale_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'de'"):
        Renderer().render("verification", "de", **CONTEXT)
    with pytest.raises(ValueError, match="'es'"):
        Renderer().render_text("reminder_day_sms", "es", **CONTEXT)


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    context = dict(CONTEXT)
    del context["code"]
    with pytest.raises(Exception, match="code"):
        Renderer().render("verification", "fr", **context)


@pytest.mark.parametrize(
    ("locale", "subjects"),
    [
        (
            "fr",
            [
                "Vous n'avez pas terminé votre demande",
                "Dernière chance : Finalisez votre demande",
                "Offre spéciale pour finaliser aujourd'hui",
            ],
        ),
        (
            "en",
            [
                "You did not finish your request",
                "Last chance: finish your request",
                "A special offer to finish today",
            ],
        ),
    ],
)
def test_abandon_recovery_steps_take_the_original_subjects_and_escape_the_offer(
    locale: str, subjects: list[str]
) -> None:
    offer = "<script>alert(1)</script> -20 %"
    rendered = [
        Renderer().render(
            "abandon_recovery", locale, **{**CONTEXT, "step": step, "offer": offer if step == 3 else None}
        )
        for step in (1, 2, 3)
    ]
    assert [r.subject for r in rendered] == subjects
    assert all("-20 %" not in r.text and "-20 %" not in r.html for r in rendered[:2])
    assert (
        "<script>" not in rendered[2].html
        and "&lt;script&gt;alert(1)&lt;/script&gt; -20 %" in rendered[2].html
    )
    assert offer in rendered[2].text, "text bodies are not HTML: the offer as written"
    # A last step without an offer does not promise one.
    plain_last = Renderer().render("abandon_recovery", locale, **{**CONTEXT, "step": 3})
    assert plain_last.subject == subjects[1]
