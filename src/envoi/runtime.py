"""`Envoi`: the composition root, and the only module that wires.

It builds every service once from the settings and hands each the collaborators it uses as keyword
arguments; nothing below it imports it. The doors (the HTTP API, the CLI, the worker process,
`SyncClient`) take an `Envoi` and use its services.

    settings ─► Database ─────────────┬─► DeliveryLedger ─► NotificationHandlers ─► registry
             │                        ├─► ScheduleBook ──────┘ (and NotificationsService)
             │                        └─► IdempotencyKeys (the API's Idempotency-Key)
             └► QueueService(registry, recorders) ─► NotificationsService
                     │                 └─► FailedJobService (dead letters)
                     └─ failed_set, marks ─► worker companions: Reconciler, DeadLetterAlerter,
                                             expired Idempotency-Key purge
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from envoi.channels import Channels
from envoi.config import Settings, load_settings
from envoi.db.session import Database
from envoi.dead_letters.alerts import DeadLetterAlerter
from envoi.dead_letters.reconciler import Reconciler
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.dead_letters.service import FailedJobService
from envoi.deliveries import DeliveryLedger
from envoi.notifications.handlers import NotificationHandlers
from envoi.notifications.idempotency import IdempotencyKeys
from envoi.notifications.schedule import ScheduleBook
from envoi.notifications.service import NotificationsService
from envoi.queue.jobs import FailureRecorder, HandlerRegistry, LoggingFailureRecorder
from envoi.queue.service import QueueService

Companion = Callable[[], Coroutine[Any, Any, None]]


class Envoi:
    """`registry=None` registers envoi's own handlers (the notification jobs); tests pass a registry of
    their own when the handlers are not what they test."""

    def __init__(self, settings: Settings | None = None, *, registry: HandlerRegistry | None = None) -> None:
        self.settings = settings = settings or load_settings()
        self.db = Database(settings.database_url)
        self.registry = registry if registry is not None else HandlerRegistry()
        #: Told of every final failure, by the worker and by the inline fallback.
        self.recorders: list[FailureRecorder] = [LoggingFailureRecorder()]
        self.queue = QueueService(settings, self.registry, self.recorders)
        self.recorders.append(SqlFailureRecorder(self.db, on_recorded=self.queue.failed_set.mark_recorded))
        self.dead_letters = FailedJobService(db=self.db, queue=self.queue)
        self.ledger = DeliveryLedger(self.db, lease_s=settings.delivery_lease_s)
        #: Delayed messages and their cancellations, in SQL (checked by the handlers before sending).
        self.schedule = ScheduleBook(self.db)
        #: The HTTP Idempotency-Key, in SQL: it holds with Redis down.
        self.idempotency = IdempotencyKeys(self.db)
        self.notifications = NotificationsService(settings=settings, queue=self.queue, schedule=self.schedule)
        self.channels: Channels | None = None
        if registry is None:
            self.channels = Channels.from_settings(settings, self.db)
            NotificationHandlers(self.channels, self.ledger, self.schedule).register(self.registry)

    def worker_companions(self, queues: Sequence[str]) -> list[Companion]:
        """What runs beside a worker serving `queues`, until it stops."""
        reconciler = Reconciler(
            db=self.db,
            failed_set=self.queue.failed_set,
            queues=queues,
            interval_s=self.settings.dlq_reconcile_interval_s,
        )
        companions: list[Companion] = [reconciler.run_forever, self.idempotency.purge_forever]
        if self.settings.alert_webhook_url is not None:
            alerter = DeadLetterAlerter(settings=self.settings, db=self.db, marks=self.queue.marks)
            companions.append(alerter.run_forever)
        return companions

    async def close(self) -> None:
        await self.queue.close()
        if self.channels is not None:
            await self.channels.aclose()
        await self.db.dispose()
