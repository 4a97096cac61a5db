"""Templates through the HTTP API: a broken override is a 500 naming template and line with nothing
enqueued; the admin page previews every message in every locale, text on the page and HTML in a
sandboxed frame with a CSP of its own (checked in a real browser when Chromium is there)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from envoi.config import LOCALES, Settings
from envoi.notifications.previews import MESSAGES
from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api import test_admin_page
from tests.api.conftest import ADMIN_TOKEN, API_KEY, Api
from tests.notifications.factories import TWILIO, appointment_data

README = Path(__file__).resolve().parents[2] / "README.md"
CHROMIUM, CHROMIUM_ARGS = test_admin_page.CHROMIUM, test_admin_page.CHROMIUM_ARGS
#: The app under a real uvicorn, for the browser (the admin page tests' fixture).
served = test_admin_page.served


async def cookies(api: Api) -> dict[str, str]:
    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    return {"envoi_admin": login.cookies["envoi_admin"]}


async def test_a_broken_override_is_a_500_naming_it_and_enqueues_nothing_of_the_flow(
    make_api: Callable[..., Awaitable[Api]], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    (folder / "en").mkdir(parents=True)
    # The SMS is rendered after the email and the .ics: none of them may be enqueued.
    (folder / "en" / "appointment_confirmation_sms.txt").write_text(
        "{{ brand }}:\n{{ closer_nmae }} at {{ starts_at|time }}\n"
    )
    api = await make_api(
        make_settings(envoi_api_key=API_KEY, templates_dir=folder, sms_enabled=True, **TWILIO)
    )
    response = await api.client.post("/v1/flows/appointment-confirmation", json=appointment_data(locale="en"))
    assert response.status_code == 500
    assert response.json() == {
        "detail": "Template en/appointment_confirmation_sms.txt (TEMPLATES_DIR) failed to render, line 2: "
        "'closer_nmae' is undefined",
        "template": "en/appointment_confirmation_sms.txt",
        "line": 2,
    }
    assert sum((await api.envoi.queue.counts(NOTIFICATIONS_QUEUE) or {"?": 1}).values()) == 0
    french = await api.client.post("/v1/flows/appointment-confirmation", json=appointment_data(locale="fr"))
    assert french.status_code == 202, "the other locale's built-in templates still work"


async def test_the_admin_page_previews_every_message_in_every_locale(
    make_api: Callable[..., Awaitable[Api]], api_settings: Settings
) -> None:
    api = await make_api(api_settings.model_copy(update={"brand_name": "Acme <Labs>"}))
    jar = await cookies(api)
    index = await api.anonymous.get("/admin/templates", cookies=jar)
    assert index.status_code == 200
    for message in MESSAGES:
        for locale in LOCALES:
            assert f'href="/admin/templates?message={message.name}&amp;locale={locale}"' in index.text
    csp = index.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, "the page keeps its strict CSP"

    page = await api.anonymous.get(
        "/admin/templates", params={"message": "invitation", "locale": "en"}, cookies=jar
    )
    assert '<p id="preview-subject">Join Northwind on Acme &lt;Labs&gt;</p>' in page.text
    assert "as an administrator" in page.text
    assert 'src="/admin/templates/preview/en/invitation.html"' in page.text and "sandbox" in page.text

    html = await api.anonymous.get("/admin/templates/preview/en/invitation.html", cookies=jar)
    assert html.status_code == 200 and html.text.startswith("<!DOCTYPE html>")
    assert "Acme &lt;Labs&gt;" in html.text
    preview_csp = html.headers["content-security-policy"]
    assert (
        "default-src 'none'" in preview_csp and "sandbox" in preview_csp and "script-src" not in preview_csp
    )
    assert "frame-ancestors 'self'" in preview_csp and html.headers["x-frame-options"] == "SAMEORIGIN"

    sms = await api.anonymous.get(
        "/admin/templates", params={"message": "reminder_day_sms", "locale": "fr"}, cookies=jar
    )
    assert "Acme &lt;Labs&gt; : rappel, RDV avec Paul Martin demain à 14:30 (UTC+1)" in sms.text
    assert "<iframe" not in sms.text, "a text message has no HTML"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/admin/templates/preview/en/invitation.html", 401),
        ("/admin/templates/preview/de/invitation.html", 404),
        ("/admin/templates/preview/en/reminder_day_sms.html", 404),
        ("/admin/templates/preview/en/nope.html", 404),
    ],
)
async def test_html_previews_need_the_admin_session_and_a_known_email(
    api: Api, path: str, status: int
) -> None:
    jar = {} if status == 401 else await cookies(api)
    assert (await api.anonymous.get(path, cookies=jar)).status_code == status


async def test_the_templates_page_asks_for_the_token_first(api: Api) -> None:
    page = await api.anonymous.get("/admin/templates")
    assert page.status_code == 200 and 'name="token"' in page.text
    unknown = await api.anonymous.get(
        "/admin/templates", params={"message": "nope"}, cookies=await cookies(api)
    )
    assert unknown.status_code == 404 and "No such message." in unknown.text


async def test_the_html_preview_renders_styled_in_a_browser_under_both_csps(api: Api, served: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is absent: install the Debian chromium package to run the browser test"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            violations: list[str] = []
            page.on(
                "console",
                lambda message: (
                    violations.append(message.text) if "Content Security Policy" in message.text else None
                ),
            )
            await page.goto(f"{served}/admin")
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await page.goto(f"{served}/admin/templates?message=appointment_confirmation&locale=fr")
            frame = page.frame_locator("#preview-html")
            button = frame.get_by_text("Rejoindre la visioconférence")
            await button.wait_for()
            # The email's inline styles apply inside the frame (its own CSP allows them).
            color: Any = await button.evaluate("element => getComputedStyle(element).color")
            assert color == "rgb(255, 255, 255)"
            assert await page.locator("#preview-text").inner_text() != ""
            assert not violations, violations
        finally:
            await browser.close()


def test_the_readmes_english_examples_ask_for_english() -> None:
    """Every flow example of the README passes `"locale": "en"`: without it, DEFAULT_LOCALE (fr) applies."""
    text = README.read_text()
    section = text[text.index("## Calling the HTTP API") :]
    section = section[: section.index("# In-app inbox")]
    locales = re.findall(r'"locale": "(\w+)"', section)
    assert set(locales) == {"en"} and len(locales) == 5, locales  # the sentence, then four flows
    assert "DEFAULT_LOCALE" in section
