"""The operations console in a real browser (headless Chromium, Playwright) against a real uvicorn, a real
worker and the SMTP sink: reminders in the delayed tab with their run-at times, one promoted and
delivered, the other cancelled; a queue paused and resumed; a dead letter resolved; a warning before
retrying bad data; /docs and /redoc without the internet. ENVOI_SCREENSHOT=docs/admin.png saves the page."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from envoi.config import Settings
from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api.conftest import ADMIN_TOKEN, API_KEY, Api, add_failed_job
from tests.api.test_admin_page import CHROMIUM, CHROMIUM_ARGS, seed, serving
from tests.api.test_flows import appointment
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, job_state

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: install the Debian chromium package"
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def mail_api(make_api: Callable[..., Any], make_delivery_settings: Callable[..., Settings]) -> Api:
    settings = make_delivery_settings(envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN)
    result: Api = await make_api(settings)
    return result


async def signed_in(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{url}/admin")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await page.locator("#job-list[data-loaded=true]").wait_for()
    return page


async def confirm(page: Page) -> None:
    await page.locator("#confirm-ok").click()


async def test_browser_shows_reminders_with_run_at_promotes_one_and_cancels_the_other(
    mail_api: Api, browser: Browser, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    api = mail_api
    await seed(api)  # dead letters for the chart and a few waiting SMS
    scheduled = await api.client.put(
        "/v1/appointments/apt-b1/reminders", json=appointment("apt-b1", in_hours=30)
    )
    emails = [r for r in scheduled.json()["reminders"] if r["channel"] == "email"]
    run_at = {r["jobId"]: r["runAt"] for r in emails}
    ids = {r["kind"]: r["jobId"] for r in emails}
    day_id, hour_id = ids["day"], ids["hour"]
    await start_worker(api.envoi)
    async with serving(api.envoi) as url:
        page = await signed_in(browser, url)
        await page.locator('.tab[data-state="delayed"]').click()
        day = page.locator(f'#job-list tr.row[data-id="{day_id}"]')
        hour = page.locator(f'#job-list tr.row[data-id="{hour_id}"]')
        await day.wait_for()
        await hour.wait_for()
        assert await page.locator("#job-when").inner_text() == "Run at"
        for row, job_id in ((day, day_id), (hour, hour_id)):
            shown = await row.locator("td.when").inner_text()
            expected = await page.evaluate("(iso) => new Date(iso).toLocaleString()", run_at[job_id])
            assert shown == expected
        await page.locator("#workers tbody tr").first.wait_for()
        assert str(os.getpid()) in await page.locator("#workers").inner_text()

        await day.click()  # the detail: masked data, options
        detail = page.locator("#job-list tr.detail")
        await detail.wait_for()
        assert "j***@example.com" in await detail.inner_text()
        assert "jane@example.com" not in await page.content()

        screenshot = os.environ.get("ENVOI_SCREENSHOT")
        if screenshot:
            await page.locator("#chart svg").wait_for()
            await page.locator("#throughput svg").wait_for()
            await page.screenshot(path=screenshot, full_page=True)

        await day.get_by_role("button", name="Promote").click()
        await confirm(page)
        await eventually(lambda: smtp_sink.messages, timeout=20, message="the promoted reminder at the sink")
        assert smtp_sink.messages[0].rcpt_tos == ["jane@example.com"]
        await day.wait_for(state="detached")

        await hour.get_by_role("button", name="Cancel").click()
        await confirm(page)
        await hour.wait_for(state="detached")
        assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, hour_id) == "unknown"
        assert len(smtp_sink.messages) == 1


async def test_browser_pauses_a_queue_the_job_waits_then_resume_delivers_it(
    mail_api: Api, browser: Browser, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    api = mail_api
    await start_worker(api.envoi)
    async with serving(api.envoi) as url:
        page = await signed_in(browser, url)
        card = page.locator('.queue[data-queue="notifications"]')
        await card.locator("button.pause").click()
        await confirm(page)
        await card.locator(".paused-badge").wait_for(state="visible")
        assert await api.envoi.queue.inspector.paused(NOTIFICATIONS_QUEUE)

        accepted = await api.client.post(
            "/v1/jobs/SEND_EMAIL", json={"to": "held@example.com", "subject": "Held", "html": "<p>held</p>"}
        )
        job_id = accepted.json()["jobId"]
        added = datetime.now(UTC)

        async def worker_polled_since() -> bool:
            workers = (await api.admin.get("/v1/admin/workers")).json()["workers"]
            return any(datetime.fromisoformat(w["lastSeenAt"]) > added for w in workers)

        await eventually(worker_polled_since, timeout=10, message="a worker poll after the add")
        await page.locator('.tab[data-state="waiting"]').click()
        await page.locator(f'#job-list tr.row[data-id="{job_id}"]').wait_for()
        assert smtp_sink.messages == []

        await card.locator("button.resume").click()
        await card.locator(".paused-badge").wait_for(state="hidden")
        await eventually(lambda: smtp_sink.messages, timeout=20, message="the held email delivered")
        assert smtp_sink.messages[0].message["Subject"] == "Held"


async def test_browser_lists_a_message_not_sent_because_its_channel_is_off(
    make_api: Callable[..., Any],
    make_delivery_settings: Callable[..., Settings],
    browser: Browser,
    start_worker: Any,
) -> None:
    settings = make_delivery_settings(envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN, sms_enabled=False)
    api: Api = await make_api(settings)
    await start_worker(api.envoi)
    accepted = await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "Hi"})
    assert accepted.status_code == 202, accepted.text

    async def listed() -> list[Any]:
        return list((await api.admin.get("/v1/admin/deliveries")).json()["items"])

    [row] = await eventually(listed, timeout=15, message="the SMS recorded as not sent")
    async with serving(api.envoi) as url:
        page = await signed_in(browser, url)
        shown = page.locator(f'#not-sent tr[data-id="{row["id"]}"]')
        await shown.wait_for()
        text = await shown.inner_text()
        assert "CHANNEL_DISABLED" in text and "SMS_ENABLED=false" in text
        assert "+33612345678" not in await page.content()
        assert await page.locator("#not-sent-empty").is_hidden()


async def test_browser_resolves_a_dead_letter_and_warns_before_retrying_invalid_data(
    api: Api, browser: Browser
) -> None:
    plain = await add_failed_job(api.envoi)
    bad = await add_failed_job(
        api.envoi,
        job_data={"to": "not-a-number", "message": "hi"},
        error_message="Invalid data for SEND_SMS: to: must be an E.164 phone number such as +33612345678",
    )
    async with serving(api.envoi) as url:
        page = await signed_in(browser, url)
        bad_row = page.locator(f'#dead-letters tr.row[data-id="{bad}"]')
        await bad_row.get_by_role("button", name="Retry").click()
        warning = await page.locator("#confirm").inner_text()
        assert "Warning" in warning and "refused" in warning
        await page.locator("#confirm button[value=cancel]").click()
        assert (await api.admin.get(f"/v1/admin/failed-jobs/{bad}")).json()["status"] == "FAILED"

        plain_row = page.locator(f'#dead-letters tr.row[data-id="{plain}"]')
        await plain_row.get_by_role("button", name="Retry").click()
        assert "Warning" not in await page.locator("#confirm").inner_text()
        await page.locator("#confirm button[value=cancel]").click()

        await plain_row.get_by_role("button", name="Resolve").click()
        await confirm(page)
        await plain_row.wait_for(state="detached")  # the list shows FAILED ones
        assert (await api.admin.get(f"/v1/admin/failed-jobs/{plain}")).json()["status"] == "RESOLVED"


async def test_docs_pages_load_nothing_from_elsewhere(api: Api, browser: Browser) -> None:
    async with serving(api.envoi) as url:
        page = await browser.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        response = await page.goto(f"{url}/docs")
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        await page.locator(".opblock").first.wait_for()
        assert "/v1/admin/queues/{queue}/jobs" in await page.content()
        assert [r for r in requests if not r.startswith(url)] == []

        await page.goto(f"{url}/redoc")
        await page.get_by_text("Enqueue notification jobs").first.wait_for()
        # ReDoc's own logo points at its CDN: the CSP blocks it; everything the page needs is local.
        elsewhere = [r for r in requests if not r.startswith((url, "blob:", "data:"))]
        assert all("cdn.redoc.ly" in r for r in elsewhere), elsewhere
