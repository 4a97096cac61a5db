"""`Envoi`: the composition root, and the only module that wires.

It builds every service once from the settings and hands each the collaborators it uses as keyword
arguments; nothing below it imports it. The doors (the HTTP API, the CLI, the worker process,
`SyncClient`) take an `Envoi` and use its services.

    settings ─► Database ─────────────┬─► DeliveryLedger ─► NotificationHandlers ─► registry
             └► QueueService(registry, recorders) ─► NotificationsService
                     │                 └─► FailedJobService (dead letters)
                     └─ failed_set, marks ─► worker companions: Reconciler, DeadLetterAlerter
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import httpx

from envoi import addresses
from envoi.channels import Channels
from envoi.config import Settings, load_settings
from envoi.db.session import Database
from envoi.dead_letters.alerts import DeadLetterAlerter
from envoi.dead_letters.reconciler import Reconciler
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.dead_letters.service import FailedJobService
from envoi.deliveries import DeliveryLedger
from envoi.events import EventBus
from envoi.notifications.handlers import NotificationHandlers
from envoi.notifications.service import NotificationsService
from envoi.queue.jobs import FailureRecorder, HandlerRegistry, LoggingFailureRecorder
from envoi.queue.service import QueueService
from envoi.webhooks.delivery import WebhookDelivery
from envoi.webhooks.safety import webhook_client
from envoi.webhooks.service import WebhookEndpointService

Companion = Callable[[], Coroutine[Any, Any, None]]


class Envoi:
    """`registry=None` registers envoi's own handlers (the notification jobs) over the channels that
    `channels(db)` builds (from the settings when None; `envoi.testing` builds recording ones); tests
    pass a registry of their own when the handlers are not what they test."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: HandlerRegistry | None = None,
        channels: Callable[[Database], Channels] | None = None,
    ) -> None:
        self.settings = settings = settings or load_settings()
        # Recipients are validated where no settings reach (request bodies, job data): process-wide rules.
        addresses.configure(
            addresses.AddressRules(
                default_phone_region=settings.default_phone_region,
                strict_email_domains=settings.email_strict_domains,
            )
        )
        self.db = Database(settings.database_url, schema=settings.database_schema)
        self.registry = registry if registry is not None else HandlerRegistry()
        #: Told of every final failure, by the worker and by the inline fallback.
        self.recorders: list[FailureRecorder] = [LoggingFailureRecorder()]
        self.queue = QueueService(settings, self.registry, self.recorders)
        #: What happened to messages and dead letters; the webhook publisher subscribes.
        self.events = EventBus(self.db)
        self.recorders.append(
            SqlFailureRecorder(self.db, on_recorded=self.queue.failed_set.mark_recorded, events=self.events)
        )
        self.dead_letters = FailedJobService(db=self.db, queue=self.queue, events=self.events)
        self.ledger = DeliveryLedger(self.db, lease_s=settings.delivery_lease_s)
        self.notifications = NotificationsService(settings=settings, queue=self.queue)
        self.webhooks = WebhookEndpointService(db=self.db, queue=self.queue, settings=settings)
        self.channels: Channels | None = None
        self._webhook_http: httpx.AsyncClient | None = None
        if registry is None:
            self.channels = (
                channels(self.db)
                if channels
                else Channels.from_settings(settings, self.db, limiter=self.queue.rate_limits)
            )
            NotificationHandlers(self.channels, self.ledger, events=self.events).register(self.registry)
            self._webhook_http = webhook_client(settings)
            WebhookDelivery(db=self.db, settings=settings, http=self._webhook_http).register(self.registry)
            self.events.subscribe(self.webhooks.publish)

    def worker_companions(self, queues: Sequence[str]) -> list[Companion]:
        """What runs beside a worker serving `queues`, until it stops."""
        reconciler = Reconciler(
            db=self.db,
            failed_set=self.queue.failed_set,
            recorder=SqlFailureRecorder(self.db, events=self.events),
            queues=queues,
            interval_s=self.settings.dlq_reconcile_interval_s,
        )
        companions: list[Companion] = [reconciler.run_forever]
        if self.settings.alert_webhook_url is not None:
            alerter = DeadLetterAlerter(
                settings=self.settings, dead_letters=self.dead_letters, marks=self.queue.marks
            )
            companions.append(alerter.run_forever)
        return companions

    async def close(self) -> None:
        await self.queue.close()
        if self.channels is not None:
            await self.channels.aclose()
        if self._webhook_http is not None:
            await self._webhook_http.aclose()
        await self.db.dispose()
