"""Delivery of webhooks by a real worker to a local receiver that verifies every signature with its own
implementation of the spec: retries keep the `webhook-id`, 410 and a long failure streak disable the
endpoint, every attempt is recorded, the secret is never logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from envoi.db.models import DeliveryStatus, MessageDelivery, WebhookEvent
from envoi.events import EventType, message_data
from envoi.queue.names import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from envoi.runtime import Envoi
from envoi.webhooks import DELIVER_WEBHOOK
from envoi.webhooks.delivery import retry_after_s
from envoi.worker import Worker
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.webhook_receiver import WebhookReceiver, spec_verify
from tests.helpers import eventually, job_state
from tests.webhooks.conftest import (
    QUEUES,
    attempts_of,
    dead_letters,
    endpoint_row,
    service_of,
    subscribe,
)

StartWorker = Callable[..., Awaitable[Worker]]


def sample(delivery_id: str = "01JDELIVERY0000000000000001") -> dict[str, Any]:
    return message_data(
        delivery_id=delivery_id,
        channel="sms",
        status="SENT",
        job_name="SEND_SMS",
        job_id="42",
        queue=NOTIFICATIONS_QUEUE,
        recipient="+33612345678",
        provider_message_id="SM123",
        metadata={"notificationId": "notif_1"},
    )


async def test_a_sent_email_is_announced_signed_with_its_metadata(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver, smtp_sink: SmtpSink
) -> None:
    endpoint_id = await subscribe(hooks, webhook_receiver, [EventType.MESSAGE_SENT])
    await start_worker(hooks, queues=QUEUES)
    metadata = {"notificationId": "notif_42", "userId": "user_7", "templateKey": "welcome"}
    job = await hooks.queue.enqueue(
        NOTIFICATIONS_QUEUE,
        "SEND_EMAIL",
        {"to": "jane.doe@example.com", "subject": "Hello", "html": "<p>Hi</p>", "metadata": metadata},
    )
    [request] = await eventually(lambda: webhook_receiver.requests, message="the webhook")
    assert request.verified, request.reason
    assert request.path == "/hooks/envoi"
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
    body = request.json
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "message.sent"
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    data = body["data"]
    assert data["metadata"] == metadata  # as the producer gave it: notificationId comes back
    assert data["recipient"] == "j***@example.com"
    assert b"jane.doe" not in request.body
    assert (data["channel"], data["jobName"], data["jobId"], data["queue"]) == (
        "email",
        "SEND_EMAIL",
        job.job_id,
        NOTIFICATIONS_QUEUE,
    )
    async with hooks.db.session() as session:
        row = await session.get(MessageDelivery, data["deliveryId"])
    assert row is not None and row.status == DeliveryStatus.SENT
    assert data["providerMessageId"] == row.provider_message_id
    assert request.event_id == f"evt_{row.id}_sent"
    assert len(smtp_sink.messages) == 1
    [attempt] = await eventually(lambda: attempts_of(hooks, endpoint_id), message="the attempt row")
    assert (attempt.event_id, attempt.event_type, attempt.status_code, attempt.error) == (
        request.event_id,
        "message.sent",
        200,
        None,
    )
    assert attempt.duration_ms >= 0


async def test_retries_after_500s_keep_the_same_webhook_id(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver
) -> None:
    endpoint_id = await subscribe(hooks, webhook_receiver)
    webhook_receiver.respond(500, times=2)
    await start_worker(hooks, queues=QUEUES)
    published = await service_of(hooks).publish(EventType.MESSAGE_SENT, sample())
    assert published is not None and len(published.job_ids) == 1
    requests = await eventually(lambda: len(webhook_receiver.requests) == 3 and webhook_receiver.requests)
    assert [r.status for r in requests] == [500, 500, 200]
    assert {r.event_id for r in requests} == {published.event_id}
    assert all(r.verified for r in requests)
    assert len({r.body for r in requests}) == 1  # the same bytes each time
    stamps = [int(r.headers["webhook-timestamp"]) for r in requests]
    assert stamps == sorted(stamps)  # each attempt signs its own time
    attempts = await eventually(lambda: _when(len, 3, attempts_of(hooks, endpoint_id)))
    assert [(a.status_code, a.error) for a in attempts] == [
        (500, "HTTP 500: receiver says no"),
        (500, "HTTP 500: receiver says no"),
        (200, None),
    ]
    assert (await endpoint_row(hooks, endpoint_id)).failing_since is None  # the streak ended with the 200
    assert await job_state(hooks, WEBHOOKS_QUEUE, published.job_ids[0]) in ("completed", "unknown")


async def _when(measure: Callable[[Any], int], expected: int, value: Awaitable[Any]) -> Any:
    result = await value
    return result if measure(result) == expected else None


async def test_a_retry_after_longer_than_the_backoff_is_honoured(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver
) -> None:
    await subscribe(hooks, webhook_receiver)
    webhook_receiver.respond(503, headers={"Retry-After": "1"})  # the backoff would retry after 0.1 s
    await start_worker(hooks, queues=QUEUES)
    await service_of(hooks).publish(EventType.MESSAGE_SENT, sample())
    first, second = await eventually(
        lambda: len(webhook_receiver.requests) == 2 and webhook_receiver.requests
    )
    assert second.at - first.at >= 0.95
    assert second.status == 200 and second.event_id == first.event_id


async def test_a_timeout_is_retried_with_the_same_webhook_id(
    make_envoi: Callable[..., Envoi],
    make_webhook_settings: Callable[..., Any],
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
) -> None:
    envoi = make_envoi(make_webhook_settings(webhook_timeout_s=0.5))
    endpoint_id = await subscribe(envoi, webhook_receiver)
    webhook_receiver.hang(times=1)
    await start_worker(envoi, queues=QUEUES)
    published = await service_of(envoi).publish(EventType.MESSAGE_SENT, sample())
    assert published is not None
    requests = await eventually(lambda: len(webhook_receiver.requests) == 2 and webhook_receiver.requests)
    assert [r.event_id for r in requests] == [published.event_id] * 2
    attempts = await eventually(lambda: _when(len, 2, attempts_of(envoi, endpoint_id)))
    assert attempts[0].status_code is None
    assert attempts[0].error == "No answer within 0.5 s (WEBHOOK_TIMEOUT_S)"
    assert 400 <= attempts[0].duration_ms < 2000
    assert attempts[1].status_code == 200


async def test_410_gone_disables_the_endpoint_and_leaves_a_dead_letter(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver
) -> None:
    endpoint_id = await subscribe(hooks, webhook_receiver)
    webhook_receiver.respond(410)
    await start_worker(hooks, queues=QUEUES)
    published = await service_of(hooks).publish(EventType.MESSAGE_SENT, sample())
    assert published is not None
    [letter] = await eventually(lambda: dead_letters(hooks, DELIVER_WEBHOOK), message="the dead letter")
    assert "410 Gone" in letter.error_message and endpoint_id in letter.error_message
    assert letter.attempts_made == 1  # no retry after a 410
    endpoint = await endpoint_row(hooks, endpoint_id)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "the endpoint answered 410 Gone"
    assert len(webhook_receiver.requests) == 1
    # The secret is not in the job's data, hence not in the dead letter.
    assert endpoint.secret.removeprefix("whsec_") not in str(letter.job_data)
    # A disabled endpoint gets nothing more.
    again = await service_of(hooks).publish(EventType.MESSAGE_SENT, sample("01JDELIVERY0000000000000002"))
    assert again is None  # no enabled endpoint left: nothing stored, nothing queued


async def test_an_endpoint_failing_longer_than_disable_after_is_disabled_and_a_dead_letter_says_so(
    make_envoi: Callable[..., Envoi],
    make_webhook_settings: Callable[..., Any],
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
) -> None:
    envoi = make_envoi(make_webhook_settings(webhook_disable_after="1s"))
    endpoint_id = await subscribe(envoi, webhook_receiver)
    webhook_receiver.respond(503, times=100)
    await start_worker(envoi, queues=QUEUES)
    published = await service_of(envoi).publish(EventType.MESSAGE_SENT, sample())
    assert published is not None
    [letter] = await eventually(lambda: dead_letters(envoi, DELIVER_WEBHOOK), message="the dead letter")
    assert "disabled: no 2xx since" in letter.error_message
    assert "WEBHOOK_DISABLE_AFTER 1 s" in letter.error_message
    assert "HTTP 503" in letter.error_message  # and what the last attempt got
    # Retries 0.1, 0.2, 0.4, 0.8 s apart: the attempt that found the streak over a second old disabled it,
    # before the job's 8 attempts were spent.
    assert 3 <= letter.attempts_made < 8
    endpoint = await endpoint_row(envoi, endpoint_id)
    assert not endpoint.enabled and endpoint.disabled_reason and endpoint.failing_since
    attempts = await attempts_of(envoi, endpoint_id)
    assert len(attempts) == len(webhook_receiver.requests) == letter.attempts_made
    assert (attempts[-1].created_at - endpoint.failing_since).total_seconds() >= 1


async def test_an_endpoint_deleted_before_delivery_gets_nothing(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver
) -> None:
    endpoint_id = await subscribe(hooks, webhook_receiver)
    published = await service_of(hooks).publish(EventType.MESSAGE_SENT, sample())
    assert published is not None
    assert await service_of(hooks).delete(endpoint_id)
    await start_worker(hooks, queues=QUEUES)
    await eventually(
        lambda: _is(job_state(hooks, WEBHOOKS_QUEUE, published.job_ids[0]), "unknown"),
        message="the job completed (and was removed)",
    )
    assert webhook_receiver.requests == []
    assert await dead_letters(hooks, DELIVER_WEBHOOK) == []


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def test_after_a_rotation_both_secrets_sign_for_a_day(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver
) -> None:
    endpoint_id = await subscribe(hooks, webhook_receiver)
    old = webhook_receiver.secrets[0]
    new = (await service_of(hooks).rotate_secret(endpoint_id)).secret
    assert new != old
    await start_worker(hooks, queues=QUEUES)
    await service_of(hooks).publish(EventType.MESSAGE_SENT, sample())
    [request] = await eventually(lambda: webhook_receiver.requests)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    # A receiver still on the old secret, and one already on the new one, both verify.
    assert spec_verify([old], request.headers, request.body, now=time.time()) is None
    assert spec_verify([new], request.headers, request.body, now=time.time()) is None


async def test_the_secret_and_the_url_are_never_logged(
    hooks: Envoi,
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # INFO as envoi runs, DEBUG for envoi and the HTTP stack. (aiosqlite's DEBUG lines print every SQL
    # parameter, whatever the table: a process must not run its database driver at DEBUG.)
    caplog.set_level(logging.INFO)
    for name in ("envoi", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    endpoint_id = await subscribe(hooks, webhook_receiver)
    secret = webhook_receiver.secrets[0]
    webhook_receiver.respond(500)
    webhook_receiver.respond(410)
    await start_worker(hooks, queues=QUEUES)
    await service_of(hooks).publish(EventType.MESSAGE_SENT, sample())
    await eventually(lambda: dead_letters(hooks, DELIVER_WEBHOOK))
    assert len(await attempts_of(hooks, endpoint_id)) == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert endpoint_id in logged  # the lines are there, naming the endpoint by id
    assert secret.removeprefix("whsec_") not in logged
    envoi_lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("envoi"))
    assert "/hooks/envoi" not in envoi_lines


async def test_with_the_queue_disabled_events_are_delivered_inline(
    make_envoi: Callable[..., Envoi],
    make_webhook_settings: Callable[..., Any],
    webhook_receiver: WebhookReceiver,
    smtp_sink: SmtpSink,
) -> None:
    envoi = make_envoi(make_webhook_settings(queue_enabled=False))
    await subscribe(envoi, webhook_receiver, [EventType.MESSAGE_SENT])
    result = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "SEND_EMAIL", {"to": "jane@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    )
    assert result.mode == "sync" and result.succeeded
    # Inline means before enqueue returned: no waiting.
    [request] = webhook_receiver.requests
    assert request.verified and request.json["type"] == "message.sent"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (None, None), ("", None), ("soon", None), ("0", None), ("999999", 6 * 3600.0)],
)
def test_retry_after_is_read_in_seconds_and_capped(value: str | None, expected: float | None) -> None:
    assert retry_after_s(value) == expected


def test_retry_after_may_be_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after_s(later)
    assert seconds is not None and 25 <= seconds <= 31


async def test_closing_the_envoi_closes_the_webhooks_http_client(webhook_settings: Any) -> None:
    envoi = Envoi(webhook_settings)
    client = envoi._webhook_http
    assert client is not None and not client.is_closed
    await envoi.close()
    assert client.is_closed


async def test_message_sent_reaches_an_endpoint_created_by_another_runtime_and_none_after_it_is_disabled(
    hooks: Envoi,
    make_envoi: Callable[..., Envoi],
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
    smtp_sink: SmtpSink,
) -> None:
    """The worker learns whether any endpoint is enabled from the statement that marks the message SENT
    (no lookup of its own when none is): an endpoint created through another runtime (its own engines
    and pools, as the API process has) gets the very next email's `message.sent`; once disabled there,
    the next email stores no event at all."""
    other = make_envoi(hooks.settings)
    await start_worker(hooks, queues=QUEUES)
    sent: list[MessageDelivery] = []

    async def send() -> MessageDelivery:
        await hooks.queue.enqueue(
            NOTIFICATIONS_QUEUE,
            "SEND_EMAIL",
            {"to": "jane@example.com", "subject": "Hi", "html": "<p>Hi</p>"},
        )

        async def recorded() -> list[MessageDelivery]:
            async with hooks.db.session() as session:
                query = select(MessageDelivery).where(MessageDelivery.status == DeliveryStatus.SENT)
                rows = [row for row in await session.scalars(query) if row.id not in {r.id for r in sent}]
            return rows

        [row] = await eventually(recorded, message="the email recorded as SENT")
        sent.append(row)
        return row

    await send()
    endpoint_id = await subscribe(other, webhook_receiver, [EventType.MESSAGE_SENT])
    during = await send()
    [request] = await eventually(lambda: webhook_receiver.requests, message="the webhook")
    assert request.verified and request.event_id == f"evt_{during.id}_sent"
    await service_of(other).update(endpoint_id, enabled=False)
    await send()
    assert len(smtp_sink.messages) == 3
    async with hooks.db.session() as session:
        stored = list(await session.scalars(select(WebhookEvent.id)))
    assert stored == [f"evt_{during.id}_sent"]  # nothing stored before the endpoint, nor after
