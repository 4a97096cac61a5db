"""The admin page's Webhooks section: server-rendered shell, cookie writes guarded by the CSRF header, and a
real browser (headless Chromium) against a real uvicorn and worker: add an endpoint and see its secret
once, see the last attempts (status code, duration, error), send a test event, replay one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvicorn

from envoi.api.app import create_app
from envoi.embedded_redis import free_port
from envoi.events import EVENT_TYPES
from envoi.worker import Worker
from tests.api.conftest import ADMIN_TOKEN, Api
from tests.fixtures.webhook_receiver import WebhookReceiver
from tests.helpers import eventually
from tests.webhooks.conftest import QUEUES, attempts_of, subscribe

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


async def test_the_dashboard_has_a_webhooks_section_and_its_writes_need_the_csrf_header(api: Api) -> None:
    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    cookies = {"envoi_admin": login.cookies["envoi_admin"]}
    page = await api.anonymous.get("/admin", cookies=cookies)
    assert 'id="webhooks-section"' in page.text
    for event in EVENT_TYPES:
        assert f'value="{event}"' in page.text
    assert '<script src="/admin/static/webhooks.js" defer></script>' in page.text
    assert '<option value="DELIVER_WEBHOOK">' in page.text  # its dead letters can be filtered
    script = await api.anonymous.get("/admin/static/webhooks.js")
    assert script.status_code == 200 and "textContent" in script.text and "innerHTML" not in script.text

    body = {"url": "https://8.8.8.8/hook", "events": ["message.sent"]}
    no_header = await api.anonymous.post("/v1/admin/webhook-endpoints", json=body, cookies=cookies)
    assert no_header.status_code == 403
    with_header = await api.anonymous.post(
        "/v1/admin/webhook-endpoints", json=body, cookies=cookies, headers={"X-Envoi-CSRF": "1"}
    )
    assert with_header.status_code == 201


@pytest.fixture
async def served(api: Api) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(api.envoi), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, message="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_browser_shows_attempts_sends_a_test_event_and_replays_one(
    api: Api,
    served: str,
    start_worker: Callable[..., Awaitable[Worker]],
    webhook_receiver: WebhookReceiver,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is absent: install the Debian chromium package to run the browser test"
        )
    from playwright.async_api import async_playwright

    endpoint_id = await subscribe(api.envoi, webhook_receiver, ["message.sent"])
    webhook_receiver.respond(500)  # the first attempt fails, its retry succeeds
    await start_worker(api.envoi, queues=QUEUES)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1400})
            await page.goto(f"{served}/admin")
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            card = page.locator(f'.endpoint[data-id="{endpoint_id}"]')
            await card.wait_for()
            assert webhook_receiver.url in await card.inner_text()

            await card.get_by_role("button", name="Send test event").click()
            await eventually(
                lambda: len(webhook_receiver.requests) == 2, message="the test event, retried once"
            )
            event_id = webhook_receiver.requests[0].event_id
            await eventually(lambda: _count(attempts_of(api.envoi, endpoint_id), 2))
            await page.reload()  # rather than wait for the page's 10 s refresh
            rows = page.locator(f'.endpoint[data-id="{endpoint_id}"] tr.attempt')
            await rows.nth(1).wait_for()
            text = await page.locator(f'.endpoint[data-id="{endpoint_id}"] table.attempts').inner_text()
            assert "500" in text and "HTTP 500: receiver says no" in text and "200" in text and " ms" in text

            await rows.first.get_by_role("button", name="Replay").click()
            await eventually(lambda: len(webhook_receiver.requests) == 3, message="the replay")
            assert webhook_receiver.requests[2].event_id == event_id
            assert all(r.verified for r in webhook_receiver.requests)

            await page.fill("#webhook-create input[name=url]", webhook_receiver.url + "/second")
            await page.click("#webhook-create button[type=submit]")
            secret = page.locator("#webhook-secret .value")
            await secret.wait_for()
            assert (await secret.inner_text()).startswith("whsec_")
            await page.locator(".endpoint").nth(1).wait_for()
            assert "whsec_" not in await page.locator("#webhooks").inner_text()
        finally:
            await browser.close()


async def _count(value: Awaitable[list[object]], expected: int) -> bool:
    return len(await value) == expected
