"""The admin page: server-rendered shells, and a real browser (headless Chromium through Playwright)
against a real uvicorn: sign in, see a failed job, open it, retry it, watch it leave the list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn

from envoi.api.app import create_app
from envoi.embedded_redis import free_port
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.api.conftest import ADMIN_TOKEN, Api, add_failed_job
from tests.helpers import eventually, job_state

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def test_page_asks_for_the_token_then_shows_the_dashboard(api: Api) -> None:
    page = await api.anonymous.get("/admin")
    assert page.status_code == 200
    assert 'name="token"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]

    wrong = await api.anonymous.post("/admin/login", data={"token": "nope"})
    assert wrong.status_code == 403
    assert "not the admin token" in wrong.text

    cross_site = await api.anonymous.post(
        "/admin/login", data={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403

    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    dashboard = await api.anonymous.get("/admin", cookies={"envoi_admin": login.cookies["envoi_admin"]})
    assert 'id="dead-letters"' in dashboard.text
    static = await api.anonymous.get("/admin/static/admin.js")
    assert static.status_code == 200
    assert "X-Envoi-CSRF" in static.text


@asynccontextmanager
async def serving(envoi: Envoi) -> AsyncIterator[str]:
    """The app over `envoi` under a real uvicorn on a free port, in this test's event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(envoi), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, message="uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def served(api: Api) -> AsyncIterator[str]:
    async with serving(api.envoi) as url:
        yield url


async def seed(api: Api) -> str:
    """A day of failures for the chart, a few jobs in the queue, and the failure the test retries."""
    now = datetime.now(UTC)
    for hours_ago, count in ((20, 1), (14, 3), (9, 2), (5, 1), (2, 4)):
        for _ in range(count):
            await add_failed_job(api.envoi, created_at=now - timedelta(hours=hours_ago), status="RETRIED")
    for _ in range(3):
        await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "hi"})
    await add_failed_job(
        api.envoi,
        job_name="SEND_EMAIL",
        job_data={"to": "jane.doe@example.com", "subject": "Your appointment", "html": "<p>…</p>"},
        error_message="SMTP 550 5.1.1 <jane.doe@example.com>: mailbox unavailable",
        created_at=now - timedelta(minutes=40),
    )
    return await add_failed_job(api.envoi, created_at=now - timedelta(minutes=3))


async def test_browser_signs_in_and_retries_a_failed_job(api: Api, served: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is absent: install the Debian chromium package to run the browser test"
        )
    from playwright.async_api import async_playwright

    failed_id = await seed(api)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{served}/admin")
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")

            row = page.locator(f'tr.row[data-id="{failed_id}"]')
            await row.wait_for()
            assert "SEND_SMS" in await row.inner_text()
            await (
                page.locator('.queue[data-queue="notifications"] [data-state="waiting"] dd')
                .filter(has_text="3")
                .wait_for()
            )
            await row.click()
            detail = page.locator("tr.detail")
            await detail.wait_for()
            detail_text = await detail.inner_text()
            assert "Twilio said 21211" in detail_text
            assert "612345678" not in detail_text  # the recipient is masked
            assert "jane.doe@example.com" not in await page.content()

            await row.get_by_role("button", name="Retry").click()
            await page.locator("#confirm-ok").click()
            await row.wait_for(state="detached")
            retried = await api.admin.get(f"/v1/admin/failed-jobs/{failed_id}")
            assert retried.json()["status"] == "RETRIED"
            assert (
                await job_state(api.envoi, NOTIFICATIONS_QUEUE, retried.json()["retriedJobId"]) == "waiting"
            )
        finally:
            await browser.close()
