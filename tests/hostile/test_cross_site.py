"""No-token mode is not open to other websites, and no mode answers to a foreign Host (DNS rebinding).

With no token set, nothing authenticates a caller of `envoi api` on 127.0.0.1: any page the operator
opens could post to it from the browser. Unsafe requests that a browser marks as coming from another
site are refused (403); programs, which send no such header, go through. Every request whose Host is not
in ENVOI_ALLOWED_HOSTS gets 400 (probes excepted).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import uvicorn

from envoi.api.app import create_app
from envoi.config import load_settings
from envoi.embedded_redis import free_port
from tests.api.conftest import Api, add_failed_job
from tests.api.test_admin_page import CHROMIUM, CHROMIUM_ARGS
from tests.fixtures.http_server import QuietHandler, serving
from tests.helpers import eventually
from tests.hostile.support import queued

DELETE_ALL = "/v1/admin/failed-jobs/delete"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def open_api(make_api: Callable[..., Any], make_settings: Callable[..., Any]) -> Api:
    """No ENVOI_API_KEY, no ENVOI_ADMIN_TOKEN: what `envoi api` on 127.0.0.1 serves by default."""
    api: Api = await make_api(make_settings())
    for _ in range(3):
        await add_failed_job(api.envoi)
    return api


async def _dead_letters(api: Api) -> int:
    response = await api.anonymous.get("/v1/admin/failed-jobs")
    assert response.status_code == 200
    return len(response.json()["items"])


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", **FORM},
        {"Origin": "http://localhost:9999", "Sec-Fetch-Site": "same-site", **FORM},  # another port
        {"Origin": "https://evil.example"},  # a browser without Sec-Fetch-Site
        {"Origin": "null", **FORM},  # a sandboxed iframe, a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        FORM,  # an old browser's form post says nothing about where it comes from
        {"content-type": "text/plain"},
    ],
)
async def test_cross_site_post_in_no_token_mode_is_refused_and_deletes_nothing(
    open_api: Api, headers: dict[str, str]
) -> None:
    response = await open_api.anonymous.post(DELETE_ALL, headers=headers, content=b"x=1")
    assert response.status_code == 403, response.text
    assert "Cross-site request refused" in response.json()["detail"]
    assert await _dead_letters(open_api) == 3


async def test_cross_site_text_plain_json_post_enqueues_nothing(open_api: Api) -> None:
    # The classic trick: <form enctype="text/plain"> posting a body that parses as JSON.
    body = b'{"userId": "u1", "title": "t", "message": "m"}'
    headers = {"Origin": "https://evil.example", "content-type": "text/plain"}
    response = await open_api.anonymous.post(
        "/v1/jobs/CREATE_INAPP_NOTIFICATION", content=body, headers=headers
    )
    assert response.status_code == 403
    assert await queued(open_api) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, the SyncClient, a Node service
        {"content-type": "application/json"},
        {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},  # the admin page itself
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
    ],
)
async def test_programs_and_same_origin_pages_still_write_in_no_token_mode(
    open_api: Api, headers: dict[str, str]
) -> None:
    response = await open_api.anonymous.post(DELETE_ALL, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"count": 3}


async def test_safe_methods_are_not_refused(open_api: Api) -> None:
    headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await open_api.anonymous.get("/v1/admin/queues", headers=headers)).status_code == 200


@pytest.mark.parametrize("token_mode", [False, True])
async def test_rebinding_host_is_refused(
    make_api: Callable[..., Any], make_settings: Callable[..., Any], api_settings: Any, token_mode: bool
) -> None:
    api: Api = await make_api(api_settings if token_mode else make_settings())
    await add_failed_job(api.envoi)
    evil = {"Host": "evil.example:8000"}
    for response in (
        await api.admin.get("/v1/admin/failed-jobs", headers=evil),
        await api.admin.post(DELETE_ALL, headers=evil),
        await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "m"}, headers=evil),
        await api.anonymous.get("/admin", headers=evil),
    ):
        assert response.status_code == 400, response.text
        assert "ENVOI_ALLOWED_HOSTS" in response.json()["detail"]
    assert len((await api.admin.get("/v1/admin/failed-jobs")).json()["items"]) == 1
    assert await queued(api) == 0
    # Probes are called by address (a pod IP): they answer whatever the Host.
    assert (await api.anonymous.get("/healthz", headers=evil)).status_code == 200


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        (None, "127.0.0.1:8000", 200),
        (None, "[::1]:8000", 200),
        (None, "LOCALHOST", 200),
        (None, "envoi.example.test", 200),  # API_URL's host
        (None, "", 400),
        ("api.example.com, admin.example.com", "admin.example.com:443", 200),
        ("api.example.com", "localhost", 400),
        ("*", "anything.example", 200),
    ],
)
async def test_allowed_hosts(
    make_api: Callable[..., Any], api_settings: Any, allowed: str | None, host: str, status: int
) -> None:
    settings = (
        api_settings
        if allowed is None
        else api_settings.model_copy(update={"envoi_allowed_hosts": allowed.split(", ")})
    )
    settings.__dict__.pop("allowed_hosts", None)  # a copy keeps the cached property of the original
    api: Api = await make_api(settings)
    response = await api.admin.get("/v1/admin/queues", headers={"Host": host})
    assert response.status_code == status, response.text


def test_default_allowed_hosts_name_the_machine_and_api_url_never_0_0_0_0() -> None:
    settings = load_settings(_env_file=None, envoi_host="0.0.0.0", api_url="https://API.example.com/v")
    assert settings.allowed_hosts == {"localhost", "127.0.0.1", "::1", "api.example.com"}
    bound = load_settings(_env_file=None, envoi_host="10.1.2.3", envoi_allowed_hosts="a.example, [::1]")
    assert bound.allowed_hosts == {"a.example", "::1"}  # given: exactly that list
    assert load_settings(_env_file=None, envoi_host="10.1.2.3").allowed_hosts >= {"10.1.2.3"}


# --- in a real browser ------------------------------------------------------------------------------


class _EvilPage(QuietHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}{DELETE_ALL}">'
            '<input name="x" value="1"></form><script>document.getElementById("f").submit()</script>'
        ).encode()
        self.answer(200, body, content_type="text/html")


@pytest.fixture
def evil_site() -> Iterator[Callable[[str], str]]:
    """Another origin (another port) serving a page that posts a form to the target when opened."""
    with serving(_EvilPage, "evil-site") as base_url:

        def site(target: str) -> str:
            _EvilPage.target = target
            return f"{base_url}/"

        yield site


@pytest.fixture
async def served_open_api(open_api: Api) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(open_api.envoi), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, message="uvicorn started")
    yield f"http://localhost:{port}"
    server.should_exit = True
    await task


async def test_a_real_browser_cross_site_form_deletes_nothing(
    open_api: Api, served_open_api: str, evil_site: Callable[[str], str]
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is absent: install the Debian chromium package to run the browser test"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(evil_site(served_open_api))
            await page.wait_for_url(f"{served_open_api}{DELETE_ALL}")
            assert "Cross-site request refused" in await page.content()
        finally:
            await browser.close()
    assert await _dead_letters(open_api) == 3
