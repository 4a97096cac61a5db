"""The API over the real app, real Redis, the test database (SQLite and PostgreSQL), the SMTP sink and a
real worker; UNSUBSCRIBE_SECRET set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from envoi.config import Settings
from envoi.db.models import MessageDelivery
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.api.conftest import API_KEY, API_URL, Api, make_api

__all__ = ["make_api"]

SECRET = "unsubscribe-secret-for-tests-0123456789abcdef"


@pytest.fixture
def recipient_settings(make_delivery_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "envoi_api_key": API_KEY,
            "api_url": API_URL,
            "unsubscribe_secret": SECRET,
            "abandon_recovery_schedule": "1s",
        }
        return make_delivery_settings(**{**values, **overrides})

    return factory


@pytest.fixture
def start_api(
    make_api: Callable[..., Awaitable[Api]],
    recipient_settings: Callable[..., Settings],
    start_worker: Callable[..., Awaitable[Worker]],
) -> Callable[..., Awaitable[Api]]:
    async def start(*, worker: bool = True, **overrides: Any) -> Api:
        api = await make_api(recipient_settings(**overrides))
        if worker:
            await start_worker(api.envoi)
        return api

    return start


async def deliveries(envoi: Envoi, recipient: str) -> list[MessageDelivery]:
    async with envoi.db.session() as session:
        rows = await session.scalars(
            select(MessageDelivery).where(MessageDelivery.recipient == recipient).order_by(MessageDelivery.id)
        )
        return list(rows)
