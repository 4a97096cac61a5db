"""An API client over the real app (lifespan included), real Redis and the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from envoi.api.app import create_app
from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.runtime import Envoi

API_KEY = "test-api-key-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
TWILIO_TOKEN = "test-twilio-auth-token"
API_URL = "https://envoi.example.test"


@dataclass
class Api:
    app: FastAPI
    envoi: Envoi
    client: httpx.AsyncClient
    admin: httpx.AsyncClient
    anonymous: httpx.AsyncClient


@pytest.fixture
def api_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        envoi_api_key=API_KEY,
        envoi_admin_token=ADMIN_TOKEN,
        twilio_auth_token=TWILIO_TOKEN,
        api_url=API_URL,
    )


def _client(app: FastAPI, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # raise_app_exceptions=False: a 500 must be seen as the client sees it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


@pytest.fixture
async def make_api(make_envoi: Callable[..., Envoi]) -> AsyncIterator[Callable[..., Any]]:
    """Start the app (its lifespan runs) on a given Envoi; everything is closed at the end of the test."""
    stack: list[tuple[Any, list[httpx.AsyncClient]]] = []

    async def factory(settings: Settings, **kwargs: Any) -> Api:
        envoi = make_envoi(settings, **kwargs)
        app = create_app(envoi)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        clients = [_client(app, API_KEY), _client(app, ADMIN_TOKEN), _client(app, None)]
        stack.append((lifespan, clients))
        return Api(app, envoi, *clients)

    yield factory
    for lifespan, clients in reversed(stack):
        for client in clients:
            await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def api(make_api: Callable[..., Any], api_settings: Settings) -> Api:
    result: Api = await make_api(api_settings)
    return result


@pytest.fixture
async def no_database(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    """An API client over an app whose database refuses connections. Its lifespan (which checks the
    migrations) is not run: the database went away after start-up."""
    database_url = f"postgresql://envoi@127.0.0.1:{free_port()}/envoi"
    envoi = Envoi(make_settings(envoi_api_key=API_KEY, database_url=database_url))
    async with _client(create_app(envoi), API_KEY) as client:
        yield client
    await envoi.close()


async def add_failed_job(envoi: Envoi, **overrides: Any) -> str:
    """A dead letter as the recorder would write it; returns its id."""
    from envoi.db.models import FailedJob

    values: dict[str, Any] = {
        "queue_name": "notifications",
        "job_name": "SEND_SMS",
        "job_id": None,
        "job_data": {"to": "+33612345678", "message": "Your code is 123456"},
        "job_options": {"attempts": 5},
        "error_message": "Twilio said 21211: invalid 'To' number",
        "stacktrace": ["Traceback (most recent call last):\n  ...\nPermanentDeliveryError: 21211"],
        "attempts_made": 1,
    }
    values.update(overrides)
    async with envoi.db.session() as session:
        row = FailedJob(**values)
        session.add(row)
    return row.id
