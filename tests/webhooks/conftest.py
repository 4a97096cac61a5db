"""Webhook tests: settings that let envoi call the local receiver (http, 127.0.0.1) with retries about
a second apart, an Envoi on them, endpoints subscribed to the receiver, and the real API app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import select

from envoi.config import Settings
from envoi.db.models import FailedJob, WebhookAttempt, WebhookEndpoint, WebhookEvent
from envoi.queue.names import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from envoi.runtime import Envoi
from envoi.webhooks import EVENT_TYPES, WebhookEndpointService
from tests.api.conftest import ADMIN_TOKEN, API_KEY, Api, make_api  # noqa: F401 (make_api: a fixture)
from tests.fixtures.webhook_receiver import WebhookReceiver

QUEUES = (NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE)


@pytest.fixture
def make_webhook_settings(make_delivery_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "webhook_allow_http": True,
            "webhook_allow_private": True,
            # Retries 0.1, 0.2, 0.4, 0.8 s apart: a failing endpoint is retried within about a second.
            "webhook_backoff_delay_ms": 100,
            "webhook_timeout_s": 2,
            "envoi_api_key": API_KEY,
            "envoi_admin_token": ADMIN_TOKEN,
        }
        values.update(overrides)
        return make_delivery_settings(**values)

    return factory


@pytest.fixture
def webhook_settings(make_webhook_settings: Callable[..., Settings]) -> Settings:
    return make_webhook_settings()


@pytest.fixture
async def hooks(make_envoi: Callable[..., Envoi], webhook_settings: Settings) -> Envoi:
    """An Envoi whose default handlers include DELIVER_WEBHOOK."""
    return make_envoi(webhook_settings)


@pytest.fixture
async def api(make_api: Callable[..., Any], webhook_settings: Settings) -> Api:  # noqa: F811
    result: Api = await make_api(webhook_settings)
    return result


def service_of(envoi: Envoi) -> WebhookEndpointService:
    return WebhookEndpointService(db=envoi.db, queue=envoi.queue, settings=envoi.settings)


async def subscribe(envoi: Envoi, receiver: WebhookReceiver, events: Sequence[str] = EVENT_TYPES) -> str:
    """An endpoint for the receiver; the receiver learns its secret. Returns the endpoint's id."""
    created = await service_of(envoi).create(url=receiver.url, events=list(events), description="tests")
    receiver.secrets = [created.secret]
    return created.id


async def endpoint_row(envoi: Envoi, endpoint_id: str) -> WebhookEndpoint:
    async with envoi.db.session() as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
    assert row is not None
    return row


async def attempts_of(envoi: Envoi, endpoint_id: str) -> list[WebhookAttempt]:
    """Oldest first."""
    async with envoi.db.session() as session:
        statement = select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id)
        return list(await session.scalars(statement.order_by(WebhookAttempt.id)))


async def events_of(envoi: Envoi, event_type: str) -> list[WebhookEvent]:
    async with envoi.db.session() as session:
        return list(await session.scalars(select(WebhookEvent).where(WebhookEvent.type == event_type)))


async def dead_letters(envoi: Envoi, job_name: str) -> list[FailedJob]:
    async with envoi.db.session() as session:
        return list(await session.scalars(select(FailedJob).where(FailedJob.job_name == job_name)))
