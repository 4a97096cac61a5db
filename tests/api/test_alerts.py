"""Dead-letter alerts: one summary per interval to ALERT_WEBHOOK_URL; a failing webhook changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from envoi.config import Settings
from envoi.dead_letters.alerts import SEEN, DeadLetterAlerter
from envoi.embedded_redis import free_port
from envoi.errors import PermanentDeliveryError
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.api.conftest import add_failed_job
from tests.helpers import eventually


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook endpoint on a real port that keeps what it is sent."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=204)

    port = free_port()
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, message="webhook receiver started")
    yield f"http://127.0.0.1:{port}/hook", received
    server.should_exit = True
    await task


def registry() -> HandlerRegistry:
    handlers = HandlerRegistry()

    @handlers.handler("SEND_SMS")
    async def refuse(_data: object, context: JobContext) -> None:
        raise PermanentDeliveryError("21211: invalid 'To' number", channel="sms", code="21211")

    @handlers.handler("SEND_EMAIL")
    async def accept(_data: object, context: JobContext) -> str:
        return "sent"

    return handlers


async def test_worker_companion_sends_one_summary(
    make_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = receiver
    envoi = make_envoi(
        make_settings(alert_webhook_url=url, alert_min_interval_s=3600, api_url="https://envoi.example.test"),
        registry=registry(),
    )
    await start_worker(envoi)
    alerter = DeadLetterAlerter(
        settings=envoi.settings, dead_letters=envoi.dead_letters, marks=envoi.queue.marks
    )
    # The companion's first pass marks what is already there as seen; failures after it are news.
    await eventually(lambda: _alerter_started(envoi), message="alerter started")

    for _ in range(2):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": "x"})
    await eventually(lambda: received, message="an alert")
    alert = received[0]
    assert alert["event"] == "dead_letters"
    assert alert["adminUrl"] == "https://envoi.example.test/admin"
    assert sum(alert["byJobName"].values()) == alert["total"] >= 1
    assert "+33612345678" not in str(alert)

    # Within the interval, more dead letters wait for the next summary instead of a second alert.
    await add_failed_job(envoi)
    assert await alerter.check_once() is False
    assert len(received) == 1


async def test_failing_webhook_does_not_affect_jobs(
    make_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/hook"
    envoi = make_envoi(make_settings(alert_webhook_url=closed, alert_min_interval_s=0), registry=registry())
    await start_worker(envoi)
    alerter = DeadLetterAlerter(
        settings=envoi.settings, dead_letters=envoi.dead_letters, marks=envoi.queue.marks
    )
    await eventually(lambda: _alerter_started(envoi), message="alerter started")

    await add_failed_job(envoi)
    assert await alerter.check_once() is False  # logged, not raised; tried again later
    done = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", {"to": "a@example.com"})

    async def completed() -> bool:
        counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE) or {}
        return counts.get("waiting", 0) == 0 and counts.get("active", 0) == 0

    await eventually(completed, message=f"job {done.job_id} processed")


async def test_no_webhook_no_companion(
    make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]
) -> None:
    with_alerts = make_envoi(make_settings(alert_webhook_url="http://127.0.0.1:9/hook"))
    without = make_envoi(make_settings())
    queues = [NOTIFICATIONS_QUEUE]
    assert len(with_alerts.worker_companions(queues)) == len(without.worker_companions(queues)) + 1


async def _alerter_started(envoi: Envoi) -> bool:
    return await envoi.queue.marks.get(SEEN) is not None
