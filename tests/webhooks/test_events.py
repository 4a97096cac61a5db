"""Where events come from: a Twilio `delivered` callback, a final failure, a dead letter and its retry, a
disabled channel. Each arrives at the receiver, signed, with the job's metadata; none is published twice;
the `webhooks` queue's own dead letters publish nothing (a failing endpoint would feed itself)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from envoi.api.twilio import expected_signature
from envoi.config import Settings
from envoi.events import EventBus, EventType, message_data
from envoi.queue.names import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from envoi.runtime import Envoi
from envoi.webhooks.service import ANY_ENABLED_ENDPOINT
from envoi.worker import Worker
from tests.api.conftest import Api
from tests.fixtures.twilio import TwilioServer
from tests.fixtures.webhook_receiver import Received, WebhookReceiver
from tests.helpers import eventually
from tests.webhooks.conftest import QUEUES, dead_letters, events_of, service_of, subscribe

StartWorker = Callable[..., Awaitable[Worker]]
STATUS_PATH = "/v1/webhooks/twilio/status"


async def one_of_type(receiver: WebhookReceiver, event_type: str) -> Received:
    [request] = await eventually(lambda: receiver.of_type(event_type), message=f"a {event_type} webhook")
    assert request.verified, request.reason
    return request


async def twilio_callback(api: Api, settings: Settings, params: dict[str, str]) -> int:
    assert settings.twilio_auth_token is not None
    token = settings.twilio_auth_token.get_secret_value()
    signature = expected_signature(token, settings.api_url + STATUS_PATH, params.items())
    response = await api.anonymous.post(STATUS_PATH, data=params, headers={"X-Twilio-Signature": signature})
    return response.status_code


async def test_a_twilio_delivered_callback_is_announced_with_the_jobs_metadata(
    api: Api,
    webhook_settings: Settings,
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
    twilio_server: TwilioServer,
) -> None:
    # Subscribed to `delivered` only: the `sent` event is still kept, for the callback's context.
    await subscribe(api.envoi, webhook_receiver, [EventType.MESSAGE_DELIVERED])
    await start_worker(api.envoi, queues=QUEUES)
    job = await api.envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE,
        "SEND_SMS",
        {"to": "+33612345678", "message": "Your code is 123456", "metadata": {"notificationId": "notif_7"}},
    )
    [sent] = await eventually(lambda: twilio_server.messages, message="the SMS")
    await eventually(lambda: events_of(api.envoi, EventType.MESSAGE_SENT), message="the sent event stored")
    assert webhook_receiver.requests == []  # not subscribed to message.sent

    params = {
        "MessageSid": sent["sid"],
        "MessageStatus": "delivered",
        "AccountSid": twilio_server.account_sid,
    }
    assert await twilio_callback(api, webhook_settings, params) == 204
    request = await one_of_type(webhook_receiver, "message.delivered")
    data = request.json["data"]
    assert data["metadata"] == {"notificationId": "notif_7"}
    assert (data["jobName"], data["jobId"], data["channel"], data["status"]) == (
        "SEND_SMS",
        job.job_id,
        "sms",
        "DELIVERED",
    )
    assert data["providerMessageId"] == sent["sid"]
    assert data["recipient"] == "+33 6** ** ** 78"
    assert request.event_id == f"evt_{data['deliveryId']}_delivered"

    # Twilio sends `read` after `delivered` (and repeats callbacks): the event is not published again.
    assert await twilio_callback(api, webhook_settings, {**params, "MessageStatus": "read"}) == 204
    assert len(await events_of(api.envoi, EventType.MESSAGE_DELIVERED)) == 1
    assert await service_of(api.envoi).publish(EventType.MESSAGE_DELIVERED, data) is None


async def test_a_twilio_failed_callback_is_a_message_failed_event(
    api: Api,
    webhook_settings: Settings,
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
    twilio_server: TwilioServer,
) -> None:
    await subscribe(api.envoi, webhook_receiver, [EventType.MESSAGE_FAILED])
    await start_worker(api.envoi, queues=QUEUES)
    await api.envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": "Hi"})
    [sent] = await eventually(lambda: twilio_server.messages)
    await eventually(lambda: events_of(api.envoi, EventType.MESSAGE_SENT))
    params = {"MessageSid": sent["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert await twilio_callback(api, webhook_settings, params) == 204
    data = (await one_of_type(webhook_receiver, "message.failed")).json["data"]
    assert data["status"] == "FAILED"
    assert data["error"] == {"code": "30003", "message": "Provider status undelivered (error 30003)"}
    assert data["jobName"] == "SEND_SMS"


async def test_a_final_failure_is_announced_once_after_the_last_attempt(
    make_envoi: Callable[..., Envoi],
    make_webhook_settings: Callable[..., Settings],
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
    twilio_server: TwilioServer,
) -> None:
    # Two attempts a second apart: a `message.failed` sent after the first would arrive before the second.
    envoi = make_envoi(make_webhook_settings(job_attempts=2, job_backoff_delay_ms=1000))
    await subscribe(envoi, webhook_receiver, [EventType.MESSAGE_FAILED, EventType.DEAD_LETTER_CREATED])
    twilio_server.fail_next(status=503, times=2, message="Service Unavailable")
    await start_worker(envoi, queues=QUEUES)
    await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE,
        "SEND_SMS",
        {"to": "+33612345678", "message": "Hi", "metadata": {"notificationId": "n_9"}},
    )
    failed = await one_of_type(webhook_receiver, "message.failed")
    assert len(twilio_server.requests) == 2
    data = failed.json["data"]
    assert data["error"]["code"] == "503"
    assert data["metadata"] == {"notificationId": "n_9"}
    created = (await one_of_type(webhook_receiver, "dead_letter.created")).json["data"]
    [letter] = await dead_letters(envoi, "SEND_SMS")
    assert created["deadLetterId"] == letter.id
    assert (created["jobName"], created["queue"], created["attemptsMade"]) == (
        "SEND_SMS",
        NOTIFICATIONS_QUEUE,
        2,
    )
    assert created["metadata"] == {"notificationId": "n_9"}
    assert created["recipient"] == "+33 6** ** ** 78"
    assert "Hi" not in str(created)  # a thin payload: never the message itself


async def test_a_permanent_failure_is_announced_at_once_with_the_error_masked(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver, twilio_server: TwilioServer
) -> None:
    await subscribe(hooks, webhook_receiver, [EventType.MESSAGE_FAILED])
    twilio_server.fail_next(status=400, code=21211, message="The 'To' number +33612345678 is not valid.")
    await start_worker(hooks, queues=QUEUES)
    await hooks.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": "Hi"})
    data = (await one_of_type(webhook_receiver, "message.failed")).json["data"]
    assert data["error"]["code"] == "21211"
    assert "+33612345678" not in data["error"]["message"]
    assert "+33 6** ** ** 78" in data["error"]["message"]


async def test_a_dead_letter_retry_is_announced(
    hooks: Envoi, start_worker: StartWorker, webhook_receiver: WebhookReceiver, twilio_server: TwilioServer
) -> None:
    await subscribe(hooks, webhook_receiver, [EventType.DEAD_LETTER_CREATED, EventType.DEAD_LETTER_RETRIED])
    twilio_server.fail_next(status=400, code=21211, message="Invalid 'To' Phone Number")
    await start_worker(hooks, queues=QUEUES)
    await hooks.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": "Hi"})
    await one_of_type(webhook_receiver, "dead_letter.created")
    [letter] = await dead_letters(hooks, "SEND_SMS")
    outcome = await hooks.dead_letters.retry(letter.id)
    data = (await one_of_type(webhook_receiver, "dead_letter.retried")).json["data"]
    assert data["deadLetterId"] == letter.id
    assert data["status"] == "RETRIED"
    assert data["retriedJobId"] == outcome.row.retried_job_id
    # The retried job succeeds this time (the stand-in failed once): its `message.sent` is not subscribed.
    await eventually(lambda: len(twilio_server.messages) == 1)


async def test_a_disabled_channel_is_announced_as_suppressed(
    make_envoi: Callable[..., Envoi],
    make_webhook_settings: Callable[..., Settings],
    start_worker: StartWorker,
    webhook_receiver: WebhookReceiver,
) -> None:
    envoi = make_envoi(make_webhook_settings(sms_enabled=False))
    await subscribe(envoi, webhook_receiver, [EventType.MESSAGE_SUPPRESSED])
    await start_worker(envoi, queues=QUEUES)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": "Hi"})
    data = (await one_of_type(webhook_receiver, "message.suppressed")).json["data"]
    assert (data["status"], data["channel"]) == ("CANCELLED", "sms")
    assert data["deliveryId"]


async def test_dead_letters_of_the_webhooks_queue_publish_nothing(
    hooks: Envoi, webhook_receiver: WebhookReceiver
) -> None:
    await subscribe(hooks, webhook_receiver)
    data = {
        "deadLetterId": "01JDEADLETTER0000000000001",
        "queue": WEBHOOKS_QUEUE,
        "jobName": "DELIVER_WEBHOOK",
    }
    assert await service_of(hooks).publish(EventType.DEAD_LETTER_CREATED, data) is None
    assert await events_of(hooks, EventType.DEAD_LETTER_CREATED) == []
    # The same event about another queue is published.
    published = await service_of(hooks).publish(
        EventType.DEAD_LETTER_CREATED, {**data, "queue": NOTIFICATIONS_QUEUE}
    )
    assert published is not None and len(published.job_ids) == 1


async def test_publish_goes_to_enabled_subscribed_endpoints_only(
    hooks: Envoi, webhook_receiver: WebhookReceiver
) -> None:
    service = service_of(hooks)
    assert await service.publish(EventType.MESSAGE_SENT, sample_data()) is None  # no endpoint: nothing stored
    assert await events_of(hooks, EventType.MESSAGE_SENT) == []
    sent_only = await subscribe(hooks, webhook_receiver, [EventType.MESSAGE_SENT])
    await subscribe(hooks, webhook_receiver, [EventType.MESSAGE_FAILED])
    disabled = await subscribe(hooks, webhook_receiver, [EventType.MESSAGE_SENT])
    await service.update(disabled, enabled=False)
    published = await service.publish(EventType.MESSAGE_SENT, sample_data())
    assert published is not None
    assert published.job_ids == [f"webhook-{published.event_id}-{sent_only}"]


def sample_data(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "delivery_id": "01JDELIVERY0000000000000009",
        "channel": "email",
        "status": "SENT",
        "job_name": "SEND_EMAIL",
        "job_id": "1",
        "queue": NOTIFICATIONS_QUEUE,
        "recipient": "jane@example.com",
    }
    values.update(overrides)
    return message_data(**values)


async def test_an_endpoint_created_by_another_runtime_receives_the_next_event(
    hooks: Envoi,
    make_envoi: Callable[..., Envoi],
    webhook_settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    """The publisher reads the endpoints on every event: one created through another runtime (its own
    engines and pools, as the API process has) is enqueued for the very next event, and one disabled
    there is no longer."""
    service = service_of(hooks)
    other = make_envoi(webhook_settings)
    assert await service.publish(EventType.MESSAGE_SENT, sample_data()) is None  # warm: nothing yet
    endpoint = await subscribe(other, webhook_receiver, [EventType.MESSAGE_SENT])
    published = await service.publish(
        EventType.MESSAGE_SENT, sample_data(delivery_id="01JDELIVERY0000000000000010")
    )
    assert published is not None
    assert published.job_ids == [f"webhook-{published.event_id}-{endpoint}"]
    await service_of(other).update(endpoint, enabled=False)
    assert (
        await service.publish(EventType.MESSAGE_SENT, sample_data(delivery_id="01JDELIVERY0000000000000011"))
        is None
    )


def test_the_bus_tells_its_interest_only_when_every_subscriber_gave_a_condition(hooks: Envoi) -> None:
    assert EventBus(hooks.db).interest is None  # nothing subscribes: emitting costs nothing anyway
    assert hooks.events.interest is not None  # the webhook publisher's: an enabled endpoint
    bus = EventBus(hooks.db)
    bus.subscribe(service_of(hooks).publish, acts_when=ANY_ENABLED_ENDPOINT)
    bus.subscribe(service_of(hooks).publish)  # acts on anything: the question cannot be asked in SQL
    assert bus.interest is None
