"""Server-side request forgery: private addresses are refused by default, after DNS resolution, when an
endpoint is saved and again when envoi connects; allowed with WEBHOOK_ALLOW_PRIVATE=true."""

from __future__ import annotations

import typing
from typing import Any

import httpcore
import httpx
import pytest

from envoi.config import Settings
from envoi.webhooks.safety import GuardedBackend, UnsafeUrlError, check_url, webhook_client
from tests.fixtures.webhook_receiver import WebhookReceiver


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, webhook_timeout_s=5, **overrides)  # type: ignore[call-arg]


REFUSED = [
    ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("https://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("https://192.168.1.20:8443/hook", "a private address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("https://localhost/hook", "localhost resolves to 127.0.0.1, a loopback address"),
    ("https://[::1]/hook", "::1 is a loopback address"),
    ("https://[::ffff:127.0.0.1]/hook", "a loopback address"),
    ("https://0.0.0.0/hook", "an unspecified address"),
    ("https://127.1/hook", "127.1 resolves to 127.0.0.1, a loopback address"),
    ("https://2130706433/hook", "resolves to 127.0.0.1"),  # 127.0.0.1 written as one number
    ("https://100.100.100.200/hook", "a cloud metadata address"),
    ("https://100.64.0.1/hook", "not a public address"),  # carrier-grade NAT
    ("https://224.0.0.1/hook", "a multicast address"),
    ("https://[fe80::1]/hook", "a link-local address"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_private_addresses_are_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError) as caught:
        await check_url(url, settings())
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "must use https"),
        ("ftp://example.com/hook", "https:// URL with a host"),
        ("https:///hook", "https:// URL with a host"),
        ("not a url", "must not contain spaces"),
        ("https://exa mple.com/", "must not contain spaces"),
        ("https://example.com/" + "a" * 2000, "at most 2000"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
async def test_urls_that_are_not_https_or_do_not_resolve_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError, match=reason):
        await check_url(url, settings())


async def test_public_addresses_are_accepted() -> None:
    assert await check_url("https://8.8.8.8/hook", settings()) == "https://8.8.8.8/hook"
    assert await check_url("https://[2606:4700:4700::1111]/hook", settings())


async def test_the_settings_allow_private_addresses_and_http() -> None:
    relaxed = settings(webhook_allow_private=True, webhook_allow_http=True)
    for url in (
        "http://127.0.0.1:8080/hook",
        "https://localhost/hook",
        "https://10.1.2.3/",
        "https://[::1]/",
    ):
        assert await check_url(url, relaxed) == url
    # Cloud metadata stays refused: no webhook receiver lives there.
    with pytest.raises(UnsafeUrlError, match="metadata"):
        await check_url("http://169.254.169.254/latest/meta-data/", relaxed)


async def post(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(url, content=b"{}", headers={"content-type": "application/json"})


async def test_delivery_connections_are_checked_again(webhook_receiver: WebhookReceiver) -> None:
    """An endpoint saved while private addresses were allowed is refused at connection time once
    they are not: the check is on the connection, not only on the saved URL."""
    strict = webhook_client(settings(webhook_allow_http=True))
    relaxed = webhook_client(settings(webhook_allow_http=True, webhook_allow_private=True))
    try:
        with pytest.raises(UnsafeUrlError, match="loopback"):
            await post(strict, webhook_receiver.url)
        localhost = webhook_receiver.url.replace("127.0.0.1", "localhost")
        with pytest.raises(UnsafeUrlError, match=r"localhost resolves to 127\.0\.0\.1"):
            await post(strict, localhost)
        assert webhook_receiver.requests == []
        assert (await post(relaxed, webhook_receiver.url)).status_code in (200, 401)
        assert len(webhook_receiver.requests) == 1
    finally:
        await strict.aclose()
        await relaxed.aclose()


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's real backend, noting which host each TCP connection was opened to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def test_envoi_connects_to_the_address_it_checked_not_to_a_second_lookup(
    webhook_receiver: WebhookReceiver,
) -> None:
    """Resolving twice would let a rebinding DNS server answer a public address to the check and a
    private one to the connection; the backend connects to the checked address itself."""
    recording = RecordingBackend()
    backend = GuardedBackend(allow_private=True, inner=recording)
    async with httpcore.AsyncConnectionPool(network_backend=backend) as pool:
        url = webhook_receiver.url.replace("127.0.0.1", "localhost")
        response = await pool.request("POST", url, content=b"{}")
    assert response.status in (200, 401)
    assert recording.hosts == ["127.0.0.1"]
    assert webhook_receiver.requests[0].headers["host"].startswith("localhost:")  # the Host is the URL's
    with pytest.raises(UnsafeUrlError, match="unix sockets"):
        await backend.connect_unix_socket("/var/run/docker.sock")


async def test_redirects_are_not_followed() -> None:
    client = webhook_client(settings())
    assert client.follow_redirects is False
    assert client.trust_env is False  # no proxy from the environment: it would connect past the check
    await client.aclose()
