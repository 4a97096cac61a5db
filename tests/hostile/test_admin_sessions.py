"""Admin page sessions: a fresh random session per sign-in, kept server-side and revoked at logout;
`Secure` only when the browser came over https (believed from a proxy only when FORWARDED_ALLOW_IPS
names it); sign-in attempts throttled per client, across API processes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from envoi.db.models import AdminSession
from envoi.db.types import utcnow
from tests.api.conftest import ADMIN_TOKEN, Api

COOKIE = "envoi_admin"


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Clients on an app as seen from a given address and scheme."""
    made: list[httpx.AsyncClient] = []

    def factory(api: Api, *, address: str = "127.0.0.1", scheme: str = "http") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=api.app, client=(address, 51000), raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url=f"{scheme}://localhost")
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


async def login(client: httpx.AsyncClient, token: str = ADMIN_TOKEN, **headers: str) -> httpx.Response:
    return await client.post("/admin/login", data={"token": token}, headers=headers)


def cookie_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return response.cookies[COOKIE]


async def signed_in(api: Api, cookie: str) -> bool:
    response = await api.anonymous.get("/v1/admin/queues", cookies={COOKIE: cookie})
    assert response.status_code in (200, 403), response.text
    return response.status_code == 200


async def test_two_logins_give_two_different_sessions(api: Api) -> None:
    first, second = cookie_of(await login(api.anonymous)), cookie_of(await login(api.anonymous))
    assert first != second
    assert await signed_in(api, first) and await signed_in(api, second)
    async with api.envoi.db.session() as session:
        stored = set((await session.scalars(select(AdminSession.id_hash))).all())
    # Only a hash is kept: a copy of the table opens no session.
    assert stored == {hashlib.sha256(c.encode()).hexdigest() for c in (first, second)}


async def test_logout_revokes_the_session(api: Api) -> None:
    kept, ended = cookie_of(await login(api.anonymous)), cookie_of(await login(api.anonymous))
    out = await api.anonymous.post("/admin/logout", cookies={COOKIE: ended})
    assert out.status_code == 303
    # The old cookie, replayed, no longer works: not on the API, not on the page.
    assert not await signed_in(api, ended)
    page = await api.anonymous.get("/admin", cookies={COOKIE: ended})
    assert 'name="token"' in page.text
    assert await signed_in(api, kept)


async def test_expired_session_and_changed_token_sign_out(
    api: Api, make_api: Callable[..., Any], api_settings: Any
) -> None:
    expired, other = cookie_of(await login(api.anonymous)), cookie_of(await login(api.anonymous))
    async with api.envoi.db.session() as session:
        digest = hashlib.sha256(expired.encode()).hexdigest()
        await session.execute(
            update(AdminSession)
            .where(AdminSession.id_hash == digest)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert not await signed_in(api, expired)
    rotated: Api = await make_api(
        api_settings.model_copy(update={"envoi_admin_token": SecretStr("a-new-admin-token-42")})
    )
    assert not await signed_in(rotated, other)
    assert await signed_in(api, other)


async def test_login_is_throttled_per_client_with_retry_after(
    api: Api, clients: Callable[..., httpx.AsyncClient]
) -> None:
    attacker = clients(api, address="203.0.113.9")
    statuses = [(await login(attacker, "wrong-token")).status_code for _ in range(200)]
    assert statuses[:10] == [403] * 10
    assert set(statuses[10:]) == {429}
    refused = await login(attacker)  # past the limit, even the right token waits
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Too many sign-in attempts" in refused.text
    # Another client is not locked out by it.
    assert cookie_of(await login(clients(api, address="198.51.100.7")))


async def test_throttle_is_shared_across_api_processes(
    api: Api, make_api: Callable[..., Any], api_settings: Any, clients: Callable[..., httpx.AsyncClient]
) -> None:
    other_process: Api = await make_api(api_settings)  # a second app on the same database
    first, second = clients(api, address="203.0.113.10"), clients(other_process, address="203.0.113.10")
    for index in range(10):
        assert (await login(first if index % 2 else second, "wrong")).status_code == 403
    assert (await login(first, "wrong")).status_code == 429
    assert (await login(second, "wrong")).status_code == 429


async def test_throttle_reads_the_client_from_a_trusted_proxy(
    make_api: Callable[..., Any], api_settings: Any, clients: Callable[..., httpx.AsyncClient]
) -> None:
    api: Api = await make_api(api_settings.model_copy(update={"admin_login_max_attempts": 2}))
    proxy = clients(api, address="127.0.0.1")
    for _ in range(2):
        assert (await login(proxy, "wrong", **{"X-Forwarded-For": "203.0.113.20"})).status_code == 403
    assert (await login(proxy, "wrong", **{"X-Forwarded-For": "203.0.113.20"})).status_code == 429
    # Another browser behind the same proxy has its own count.
    assert (await login(proxy, "wrong", **{"X-Forwarded-For": "203.0.113.21"})).status_code == 403
    # An untrusted peer cannot pick its count by writing the header.
    direct = clients(api, address="198.51.100.30")
    for forwarded in ("1.1.1.1", "2.2.2.2"):
        assert (await login(direct, "wrong", **{"X-Forwarded-For": forwarded})).status_code == 403
    assert (await login(direct, "wrong", **{"X-Forwarded-For": "3.3.3.3"})).status_code == 429


def _secure(response: httpx.Response) -> bool:
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header
    return "; secure" in header


@pytest.mark.parametrize(
    ("allow", "address", "scheme", "forwarded", "secure"),
    [
        (None, "127.0.0.1", "http", "https", True),  # a TLS proxy on this machine (the default)
        (None, "127.0.0.1", "http", None, False),
        (None, "203.0.113.9", "http", "https", False),  # anyone else may write the header
        ("10.0.0.0/8", "10.1.2.3", "http", "https", True),
        ("10.0.0.0/8", "127.0.0.1", "http", "https", False),
        (None, "203.0.113.9", "https", None, True),  # TLS to envoi itself
    ],
)
async def test_secure_flag_only_over_https_or_behind_an_allowed_proxy(
    make_api: Callable[..., Any],
    api_settings: Any,
    clients: Callable[..., httpx.AsyncClient],
    allow: str | None,
    address: str,
    scheme: str,
    forwarded: str | None,
    secure: bool,
) -> None:
    settings = (
        api_settings if allow is None else api_settings.model_copy(update={"forwarded_allow_ips": [allow]})
    )
    api: Api = await make_api(settings)
    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    response = await login(clients(api, address=address, scheme=scheme), **headers)
    assert response.status_code == 303
    assert _secure(response) is secure
