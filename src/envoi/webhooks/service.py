"""`WebhookEndpointService`: the endpoints (create, list, update, delete, rotate their secret), their
attempts, and publishing: one `DELIVER_WEBHOOK` job per event and subscribed endpoint.

Used by the admin API, `envoi webhooks` and the admin page; `publish` is what envoi's event bus calls.
Secrets leave this module twice only: in the answer to `create` and to `rotate_secret`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError

from envoi.config import Settings
from envoi.db.models import WebhookAttempt, WebhookEndpoint, WebhookEvent
from envoi.db.session import Database
from envoi.db.types import new_id, utcnow
from envoi.errors import EnvoiError
from envoi.events import EVENT_TYPES, TEST_EVENT, EventType, event_id_for
from envoi.queue.base import EnqueueResult
from envoi.queue.names import WEBHOOKS_QUEUE
from envoi.queue.service import QueueService
from envoi.webhooks.jobs import DeliverWebhookJob, delivery_job_id, webhook_job_options
from envoi.webhooks.safety import UnsafeUrlError, check_url
from envoi.webhooks.signing import new_secret

log = logging.getLogger("envoi.webhooks")

#: After a rotation the old secret signs too, for this long: receivers have a day to switch.
ROTATION_OVERLAP = timedelta(hours=24)
ATTEMPTS_MAX_LIMIT = 100
#: True when `publish` would do anything with a message event (it stores events only while an endpoint
#: is enabled): the event bus's condition for this subscriber, read by the ledger's SENT statement.
ANY_ENABLED_ENDPOINT = exists().where(WebhookEndpoint.enabled.is_(True))
#: What `publish` reads of the endpoints, built once.
ENABLED_ENDPOINTS = (
    select(WebhookEndpoint.id, WebhookEndpoint.events)
    .where(WebhookEndpoint.enabled.is_(True))
    .order_by(WebhookEndpoint.id)
)
DESCRIPTION_MAX_LENGTH = 500


class EndpointNotFoundError(EnvoiError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"No webhook endpoint with id {endpoint_id}")
        self.endpoint_id = endpoint_id


class EventNotFoundError(EnvoiError):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"No webhook event with id {event_id}")
        self.event_id = event_id


class EndpointDisabledError(EnvoiError):
    """Replaying or testing needs an enabled endpoint (the delivery would refuse it anyway)."""


class InvalidEndpointError(EnvoiError):
    """`fields` maps each bad field (`url`, `events`, `events.1`, `description`) to the reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in fields.items()))
        self.fields = fields


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """What `create` and `rotate_secret` answer: the only times the secret is shown."""

    id: str
    secret: str


@dataclass(frozen=True, slots=True)
class Published:
    event_id: str
    #: One per endpoint the event went to (none when no enabled endpoint subscribes to it).
    job_ids: list[str]


def iso_now() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


def _events_errors(events: Any) -> dict[str, str]:
    if not isinstance(events, list | tuple) or not events:
        return {"events": f"must be a non-empty list of: {', '.join(EVENT_TYPES)}"}
    return {
        f"events.{i}": f"unknown event {name!r}; expected one of {', '.join(EVENT_TYPES)}"
        for i, name in enumerate(events)
        if name not in EVENT_TYPES
    }


class WebhookEndpointService:
    def __init__(self, *, db: Database, queue: QueueService, settings: Settings) -> None:
        self.db = db
        self.queue = queue
        self.settings = settings

    async def _validate(
        self, *, url: str | None = None, events: Any = None, description: str | None = None
    ) -> None:
        errors: dict[str, str] = {}
        if url is not None:
            try:
                await check_url(url, self.settings)
            except UnsafeUrlError as exc:
                errors["url"] = exc.reason
        if events is not None:
            errors.update(_events_errors(events))
        if description is not None and len(description) > DESCRIPTION_MAX_LENGTH:
            errors["description"] = f"must be at most {DESCRIPTION_MAX_LENGTH} characters"
        if errors:
            raise InvalidEndpointError(errors)

    async def create(
        self, *, url: str, events: Sequence[str], description: str | None = None
    ) -> EndpointSecret:
        await self._validate(url=url, events=events, description=description)
        endpoint = WebhookEndpoint(
            url=url,
            events=list(dict.fromkeys(events)),
            description=description or None,
            secret=new_secret(),
            enabled=True,
        )
        async with self.db.session() as session:
            session.add(endpoint)
        log.info("Webhook endpoint %s created for %s", endpoint.id, ", ".join(endpoint.events))
        return EndpointSecret(endpoint.id, endpoint.secret)

    async def list(self) -> Sequence[WebhookEndpoint]:
        async with self.db.session() as session:
            return list(await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))

    async def get(self, endpoint_id: str) -> WebhookEndpoint:
        async with self.db.session() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            raise EndpointNotFoundError(endpoint_id)
        return endpoint

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        """Change what is given (None leaves a field as it is; an empty description clears it).
        Enabling clears the reason it was disabled and its failure streak."""
        await self.get(endpoint_id)
        await self._validate(url=url, events=events, description=description)
        async with self.db.session() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if endpoint is None:
                raise EndpointNotFoundError(endpoint_id)
            if url is not None:
                endpoint.url = url
            if events is not None:
                endpoint.events = list(dict.fromkeys(events))
            if description is not None:
                endpoint.description = description or None
            if enabled is True and not endpoint.enabled:
                endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, None, None
            elif enabled is False and endpoint.enabled:
                endpoint.enabled, endpoint.disabled_reason = False, "disabled by an operator"
        return endpoint

    async def delete(self, endpoint_id: str) -> bool:
        """Delete the endpoint and its attempts. Jobs already queued for it complete without sending."""
        async with self.db.session() as session:
            result = await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
            await session.execute(delete(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id))
        return bool(getattr(result, "rowcount", 0))

    async def rotate_secret(self, endpoint_id: str) -> EndpointSecret:
        """A new secret; the old one keeps signing beside it for ROTATION_OVERLAP (24 h)."""
        async with self.db.session() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if endpoint is None:
                raise EndpointNotFoundError(endpoint_id)
            endpoint.previous_secret = endpoint.secret
            endpoint.previous_secret_expires_at = utcnow() + ROTATION_OVERLAP
            endpoint.secret = new_secret()
        log.info("Webhook endpoint %s: secret rotated", endpoint_id)
        return EndpointSecret(endpoint.id, endpoint.secret)

    async def attempts(self, endpoint_id: str, *, limit: int = 20) -> Sequence[WebhookAttempt]:
        """The endpoint's latest attempts, newest first."""
        if not 1 <= limit <= ATTEMPTS_MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {ATTEMPTS_MAX_LIMIT}")
        await self.get(endpoint_id)
        statement = (
            select(WebhookAttempt)
            .where(WebhookAttempt.endpoint_id == endpoint_id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        )
        async with self.db.session() as session:
            return list(await session.scalars(statement))

    async def replay(self, endpoint_id: str, event_id: str) -> EnqueueResult:
        """Send one stored event to the endpoint again, whatever it subscribes to now, with the same
        `webhook-id` (the receiver deduplicates if it had it) and fresh attempts."""
        endpoint = await self._enabled(endpoint_id)
        async with self.db.session() as session:
            event = await session.get(WebhookEvent, event_id)
        if event is None:
            raise EventNotFoundError(event_id)
        job_id = f"{delivery_job_id(event.id, endpoint.id)}-replay-{new_id()}"
        return await self._enqueue(endpoint.id, event, job_id)

    async def send_test(self, endpoint_id: str) -> Published:
        """A `webhook.test` event to this endpoint only."""
        endpoint = await self._enabled(endpoint_id)
        event = await self._store(
            f"evt_{new_id()}", TEST_EVENT, {"endpointId": endpoint.id, "message": "A test event from envoi"}
        )
        assert event is not None  # a fresh id cannot exist already
        result = await self._enqueue(endpoint.id, event, delivery_job_id(event.id, endpoint.id))
        return Published(event.id, [result.job_id])

    async def publish(self, event_type: str, data: dict[str, Any]) -> Published | None:
        """Enqueue one delivery per enabled endpoint subscribed to `event_type`.

        Nothing is stored or enqueued when no endpoint is enabled. Otherwise the event is stored
        (`webhook_events`) even when none subscribes to its type: a later status callback repeats the
        context of the `message.sent` before it. An event about one delivery or dead letter has a
        stable id, and publishing it again does nothing (None). Events about the `webhooks` queue's own
        dead letters are not published: a failing endpoint would feed itself.
        """
        kind = EventType(event_type)
        if kind.value.startswith("dead_letter.") and data.get("queue") == WEBHOOKS_QUEUE:
            return None
        # Read on every event, not cached: an endpoint created by another process (the API) receives
        # the next event. One statement in autocommit, two columns, no ORM objects (it runs once per
        # message sent).
        async with self.db.connection(bounded=True) as connection:
            endpoints = (await connection.execute(ENABLED_ENDPOINTS)).all()
        if not endpoints:
            return None
        subject = data.get("deliveryId") or data.get("deadLetterId")
        event_id = event_id_for(kind, str(subject)) if subject else f"evt_{new_id()}"
        event = await self._store(event_id, kind.value, data)
        if event is None:
            log.info("Event %s was published already: not again", event_id)
            return None
        job_ids = []
        for endpoint in endpoints:
            if kind.value in endpoint.events:
                result = await self._enqueue(endpoint.id, event, delivery_job_id(event.id, endpoint.id))
                job_ids.append(result.job_id)
        return Published(event.id, job_ids)

    async def _enabled(self, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self.get(endpoint_id)
        if not endpoint.enabled:
            raise EndpointDisabledError(
                f"Webhook endpoint {endpoint_id} is disabled ({endpoint.disabled_reason}): enable it first"
            )
        return endpoint

    async def _store(self, event_id: str, event_type: str, data: dict[str, Any]) -> WebhookEvent | None:
        """Insert the event; None when its id exists already."""
        event = WebhookEvent(
            id=event_id, type=event_type, payload={"type": event_type, "timestamp": iso_now(), "data": data}
        )
        try:
            async with self.db.session() as session:
                session.add(event)
        except IntegrityError:
            return None
        return event

    async def _enqueue(self, endpoint_id: str, event: WebhookEvent, job_id: str) -> EnqueueResult:
        job = DeliverWebhookJob(
            endpoint_id=endpoint_id,
            event_id=event.id,
            type=event.type,
            timestamp=str(event.payload["timestamp"]),
            payload=event.payload,
        )
        return await self.queue.enqueue_job(
            WEBHOOKS_QUEUE, job, job_id=job_id, **webhook_job_options(self.settings)
        )
