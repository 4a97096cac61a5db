"""Your templates and your brand: TEMPLATES_DIR overrides one file and the rest stay built in; a broken
override fails with its name and line (start-up for a syntax error, the job for a render error); every
message in both locales carries the brand settings, never "envoi", prints its time zone, escapes HTML."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envoi.cli import app as cli
from envoi.config import LOCALES, Settings
from envoi.errors import ConfigError, TemplateError
from envoi.notifications.filters import ROLE_LABELS
from envoi.notifications.previews import LAYOUT, MESSAGES, preview
from envoi.notifications.rendering import BUILTIN_TEMPLATES, Brand, Renderer, template_files
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.dead_letters.support import rows, until
from tests.helpers import bull_queue

DOC = Path(__file__).resolve().parents[2] / "docs" / "templates.md"
BRAND = {
    "brand_name": "Acme <Labs> & Co",
    "brand_url": "https://acme.example.com/",
    "brand_logo_url": "https://cdn.example.com/logo.png",
    "support_email": "help@acme.example.com",
    # The sender's display name still says envoi: BRAND_NAME wins over it.
    "email_from": "envoi <no-reply@example.com>",
}
ESCAPED_BRAND = "Acme &lt;Labs&gt; &amp; Co"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings_with(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --- TEMPLATES_DIR -----------------------------------------------------------------------------------


async def test_an_override_replaces_its_template_and_the_others_stay_built_in(
    tmp_path: Path, make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]
) -> None:
    folder = tmp_path / "templates"
    write(folder, "en/verification.subject.txt", "Your {{ brand }} code: {{ code }}\n")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff")  # not a template: left alone
    service = make_envoi(make_settings(templates_dir=folder), registry=HandlerRegistry()).notifications
    await service.send_verification_email(
        email="a@example.com", first_name="A", verification_token="1234", locale="en"
    )
    await service.send_verification_email(
        email="b@example.com", first_name="B", verification_token="5678", locale="fr"
    )
    await service.send_invitation_email(
        email="c@example.com",
        organization_name="Acme",
        inviter_name="Paul",
        invitation_token="t",
        locale="en",
    )
    jobs = await bull_queue(service.queue, NOTIFICATIONS_QUEUE).getJobs(["waiting"])
    subjects = {job.data["to"]: job.data["subject"] for job in jobs}
    assert subjects == {
        "a@example.com": "Your envoi code: 1234",
        "b@example.com": "envoi : vérifiez votre adresse e-mail",
        "c@example.com": "Join Acme on envoi",
    }
    english = next(job for job in jobs if job.data["to"] == "a@example.com")
    assert "This code expires in 15 minutes" in english.data["text"], "the body is still the built-in one"


def test_the_layout_can_be_overridden_too(tmp_path: Path) -> None:
    base = (BUILTIN_TEMPLATES / "base.html").read_text().replace("#f4f4f5", "#fafaf0")
    write(tmp_path, "base.html", base)
    renderer = Renderer(templates_dir=tmp_path)
    html = preview(renderer, settings_with(), "reminder_hour", "fr").html
    assert html is not None and "#fafaf0" in html and "#f4f4f5" not in html
    assert renderer.origin("base.html") == tmp_path.resolve() / "base.html"
    assert renderer.origin("en/verification.html") == BUILTIN_TEMPLATES / "en/verification.html"


def test_a_syntax_error_in_an_override_stops_start_up_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "fr/invitation.txt", "Bonjour,\n\n{% if role %}\nen tant que {{ role }}\n")
    with pytest.raises(ConfigError) as caught:
        Renderer(templates_dir=tmp_path)
    assert str(caught.value).startswith("Invalid setting TEMPLATES_DIR: fr/invitation.txt, line 4: ")


def test_a_render_error_names_the_template_and_the_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "en/verification.html",
        '{% extends "base.html" %}\n{% block content %}\n<p>Hi</p>\n<p>{{ frist_name }}</p>\n{% endblock %}\n',
    )
    renderer = Renderer(templates_dir=tmp_path)
    with pytest.raises(TemplateError) as caught:
        renderer.render("verification", "en", first_name="Jane", code="1", expires_minutes=15)
    error = caught.value
    assert (error.template, error.line, error.overridden) == ("en/verification.html", 4, True)
    assert (
        str(error)
        == "Template en/verification.html (TEMPLATES_DIR) failed to render, line 4: 'frist_name' is undefined"
    )
    # Only the broken file fails: the French one, and every other message, still render.
    assert renderer.render("verification", "fr", first_name="Jane", code="1", expires_minutes=15).subject


async def test_a_template_that_fails_in_a_worker_is_dead_lettered_once_with_its_name(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
) -> None:
    """An application job that renders envoi's templates in the worker: the error is permanent."""
    write(tmp_path / "templates", "en/footer.txt", "--\n{{ support_email.upper() }}\n")
    settings = make_settings(templates_dir=tmp_path / "templates")
    renderer = Renderer.from_settings(settings)
    registry = HandlerRegistry()
    calls: list[JobContext] = []

    async def send_receipt(data: dict[str, Any], ctx: JobContext) -> None:
        calls.append(ctx)
        renderer.render(
            "abandon_recovery", "en", first_name=None, resume_url=data["url"], step=1, steps=3, offer=None
        )

    registry.register("SEND_RECEIPT", send_receipt)
    envoi = make_envoi(settings, registry=registry)
    await start_worker(envoi)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_RECEIPT", {"url": "https://example.com/r"})
    [row] = await until(lambda: rows(envoi), message="the dead letter")
    assert row.attempts_made == 1 and len(calls) == 1
    assert row.error_message.startswith("Template en/footer.txt (TEMPLATES_DIR) failed to render, line 2: ")
    assert "'None' has no attribute 'upper'" in row.error_message


# --- the brand, the dates, the words ------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", [message.name for message in MESSAGES])
def test_every_message_carries_the_brand_and_the_time_zone(name: str, locale: str) -> None:
    settings = settings_with(**BRAND)
    result = preview(Renderer.from_settings(settings), settings, name, locale)
    parts = [result.text, *(part for part in (result.subject, result.html) if part is not None)]
    assert not any("envoi" in part.lower() for part in parts), "BRAND_NAME replaces envoi everywhere"
    if result.html is not None:
        assert ESCAPED_BRAND in result.html and "<Labs>" not in result.html
        assert '<img src="https://cdn.example.com/logo.png" alt="Acme &lt;Labs&gt; &amp; Co"' in result.html
        assert 'href="https://acme.example.com/"' in result.html
        assert 'href="mailto:help@acme.example.com"' in result.html
        assert "Acme <Labs> & Co" in result.text and "help@acme.example.com" in result.text
    # The sample appointment is at 14:30 in Paris: wherever the time is printed, its zone is too.
    for part in parts:
        for time in re.findall(r"14:30|2:30\u202fPM|2:30 PM", part):
            assert re.search(
                rf"{time} \((UTC\+1|heure normale d\u2019Europe centrale|Central European Standard Time)\)",
                part,
            ), part


def test_the_brand_falls_back_to_email_froms_display_name_then_envoi() -> None:
    assert (
        Brand.from_settings(settings_with(email_from="Northwind <no-reply@example.com>")).name == "Northwind"
    )
    assert Brand.from_settings(settings_with(email_from="no-reply@example.com")).name == "envoi"
    chosen = settings_with(email_from="Northwind <no-reply@example.com>", brand_name="Acme")
    assert Brand.from_settings(chosen).name == "Acme"


@pytest.mark.parametrize(
    ("ttl", "locale", "verification", "invitation"),
    [
        (
            {"verification_code_ttl_min": 30, "invitation_ttl_days": 14},
            "en",
            "expires in 30 minutes",
            "expires in 14 days",
        ),
        (
            {"verification_code_ttl_min": 1, "invitation_ttl_days": 1},
            "en",
            "expires in 1 minute.",
            "expires in 1 day.",
        ),
        (
            {"verification_code_ttl_min": 1, "invitation_ttl_days": 1},
            "fr",
            "expire dans 1 minute.",
            "expire dans 1\u00a0jour.",
        ),
        (
            {"verification_code_ttl_min": 45, "invitation_ttl_days": 3},
            "fr",
            "expire dans 45 minutes",
            "expire dans 3\u00a0jours",
        ),
    ],
)
def test_lifetimes_stated_in_messages_follow_the_settings(
    ttl: dict[str, int], locale: str, verification: str, invitation: str
) -> None:
    settings = settings_with(**ttl)
    renderer = Renderer.from_settings(settings)
    assert verification in preview(renderer, settings, "verification", locale).text
    assert invitation in preview(renderer, settings, "invitation", locale).text


@pytest.mark.parametrize(
    ("role", "fr", "en"),
    [
        ("admin", "en tant qu'administrateur.", "as an administrator."),
        ("OWNER", "en tant que propriétaire.", "as an owner."),
        ("member", "en tant que membre.", "as a member."),
        ("editor", "en tant qu'éditeur.", "as an editor."),
        ("closer", "en tant que closer.", "as a closer."),
        ("intern", "en tant qu'intern.", "as an intern."),
        (None, "sur envoi.", "on envoi."),
    ],
)
def test_roles_are_translated_with_elision_and_articles(role: str | None, fr: str, en: str) -> None:
    renderer = Renderer()
    context = {
        "organization_name": "Acme",
        "inviter_name": "Paul",
        "invite_url": "https://x.example/i",
        "expires_days": 7,
    }
    assert fr in renderer.render("invitation", "fr", role=role, **context).text
    assert en in renderer.render("invitation", "en", role=role, **context).text
    assert set(ROLE_LABELS["fr"]) == set(ROLE_LABELS["en"])


@pytest.mark.parametrize(
    ("zone", "offset"),
    [("Europe/Paris", "UTC+2"), ("America/New_York", "UTC-4"), ("Asia/Kolkata", "UTC+5:30"), ("UTC", "UTC")],
)
def test_short_zones_are_plain_ascii_offsets(zone: str, offset: str) -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    context = {"closer_name": "Jane", "starts_at": summer, "visio_url": None, "timezone": zone}
    sms = Renderer().render_text("reminder_day_sms", "en", **context)
    assert f"({offset})." in sms and sms.isascii()


# --- the catalogue, the docs, the CLI ---------------------------------------------------------------


def test_the_catalogue_covers_every_built_in_file_and_renders_with_its_variables() -> None:
    catalogued = {*LAYOUT, *(name for m in MESSAGES for locale in LOCALES for name in m.files(locale))}
    assert catalogued == set(template_files(BUILTIN_TEMPLATES))
    settings = settings_with()
    renderer = Renderer.from_settings(settings)
    for message in MESSAGES:
        for locale in LOCALES:
            assert preview(renderer, settings, message.name, locale).text  # StrictUndefined: nothing missing


def test_docs_templates_md_names_every_message_variable_and_filter() -> None:
    text = DOC.read_text()
    names = {m.name for m in MESSAGES} | {v for m in MESSAGES for v in m.variables} | set(LAYOUT)
    names |= {"brand", "brand_url", "brand_logo_url", "support_email", "locale", "timezone"}
    names |= {"date", "time", "zone", "utc_offset", "duration", "role_label", "elide", "indefinite"}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"undocumented in {DOC.name}: {missing}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in ("TEMPLATES_DIR", "BRAND_NAME", "DEFAULT_LOCALE", "EMAIL_FROM"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_cli_lists_the_messages_and_which_files_are_overridden(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(env / "mine", "fr/reminder_day_sms.txt", "{{ brand }} : demain {{ starts_at|time }}\n")
    write(env / "mine", "en/verificaton.html", "typo'd name\n")
    monkeypatch.setenv("TEMPLATES_DIR", str(env / "mine"))
    result = CliRunner().invoke(cli, ["templates", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "2 file(s)" in lines[0]
    [sms] = [line for line in lines if line.startswith("reminder_day_sms ")]
    assert "overridden: fr/reminder_day_sms.txt" in sms
    [verification] = [line for line in lines if line.startswith("verification ")]
    assert "built-in" in verification
    assert lines[-1] == "Not a built-in template (used only if an override includes it): en/verificaton.html"


def test_cli_previews_a_message_in_a_locale_as_text_or_html(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAND_NAME", "Acme")
    text = CliRunner().invoke(cli, ["templates", "preview", "invitation", "--locale", "en"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("Subject: Join Northwind on Acme\n\nHello,\n")
    assert "as an administrator" in text.output
    html = CliRunner().invoke(cli, ["templates", "preview", "invitation", "--html"])
    assert html.exit_code == 0 and "<!DOCTYPE html>" in html.output and '<html lang="fr">' in html.output
    sms = CliRunner().invoke(cli, ["templates", "preview", "reminder_hour_sms", "--locale", "fr"])
    assert (
        sms.output
        == "Acme : votre RDV avec Paul Martin commence dans 1 h, à 14:30 (UTC+1). Lien : https://meet.example.com/apt_42\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["templates", "preview", "welcome"],
            2,
            "envoi: unknown template 'welcome'; expected one of verification,",
        ),
        (["templates", "preview", "verification", "--locale", "de"], 2, "envoi: unknown locale 'de'"),
    ],
)
def test_cli_refuses_an_unknown_message_or_locale(
    env: Path, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code and result.output.startswith(message)


def test_cli_reports_a_broken_override_with_its_name(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(env / "mine", "en/reminder_hour.subject.txt", "Soon: {{ starts_at|time('nope') }}\n")
    monkeypatch.setenv("TEMPLATES_DIR", str(env / "mine"))
    result = CliRunner().invoke(cli, ["templates", "preview", "reminder_hour", "--locale", "en"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "envoi: Template en/reminder_hour.subject.txt (TEMPLATES_DIR) failed to render, line 1: "
    )
    write(env / "mine", "en/reminder_hour.txt", "{% endif %}\n")
    broken = CliRunner().invoke(cli, ["templates", "list"])
    assert broken.exit_code == 2
    assert broken.output.startswith("envoi: Invalid setting TEMPLATES_DIR: en/reminder_hour.txt, line 1: ")
