"""`Envoi`: the composition root, and the only module that wires.

It builds every service once from the settings and hands each the collaborators it uses as keyword
arguments; nothing below it imports it. The doors (the HTTP API, the CLI, the worker process,
`SyncClient`) take an `Envoi` and use its services.

    settings ─► Database ─────────────┬─► DeliveryLedger ─► NotificationHandlers ─► registry
             │                         │                       the application's @job jobs ─┘
             │                        ├─► ScheduleBook (delayed messages, cancellations; NotificationsService too)
             │                        ├─► PreferencesService ─► RecipientPolicy (handlers at send time,
             │                        │                          NotificationsService for unsubscribe links)
             │                        └─► IdempotencyKeys (the API's Idempotency-Key)
             └► QueueService(registry, recorders) ─► NotificationsService
                     │                 └─► FailedJobService (dead letters)
                     └─ failed_set, marks ─► worker companions: Reconciler, DeadLetterAlerter,
                                             expired Idempotency-Key purge

The application's own jobs (`@job`, `envoi.queue.jobs.DECLARED_JOBS`) are declared by importing their
modules; the doors do that first (`import_job_modules`, from ENVOI_JOBS and `--jobs`), then build `Envoi`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import httpx

from envoi import addresses, tracing
from envoi.channels import Channels
from envoi.config import Settings, load_settings
from envoi.db.session import Database
from envoi.dead_letters.alerts import DeadLetterAlerter
from envoi.dead_letters.reconciler import Reconciler
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.dead_letters.service import FailedJobService
from envoi.deliveries import DeliveryLedger
from envoi.errors import ConfigError
from envoi.events import EventBus
from envoi.notifications.digest import InboxDigests
from envoi.notifications.handlers import NotificationHandlers
from envoi.notifications.idempotency import IdempotencyKeys
from envoi.notifications.schedule import ScheduleBook
from envoi.notifications.service import NotificationsService
from envoi.queue.jobs import DECLARED_JOBS, FailureRecorder, HandlerRegistry, LoggingFailureRecorder
from envoi.queue.service import QueueService
from envoi.quiet_hours import QuietHours
from envoi.recipients import PreferencesService, RecipientPolicy, UnsubscribeTokens
from envoi.webhooks.delivery import WebhookDelivery
from envoi.webhooks.safety import webhook_client
from envoi.webhooks.service import ANY_ENABLED_ENDPOINT, WebhookEndpointService

log = logging.getLogger("envoi")

Companion = Callable[[], Coroutine[Any, Any, None]]


def import_job_modules(modules: Iterable[str]) -> list[str]:
    """Import the modules that declare the application's jobs (`@job`); returns the job names declared.

    The working directory goes first on `sys.path`, as uvicorn and celery do: `envoi worker --jobs
    myapp.jobs` run from the application's folder finds `myapp`. Any failure to import is one
    `ConfigError` line naming the module (the doors exit 2 with it).
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ConfigError(f"Cannot import job module {module!r} (ENVOI_JOBS, --jobs): {reason}") from exc
    return sorted(DECLARED_JOBS)


class Envoi:
    """`registry=None` registers envoi's own handlers (the notification jobs) over the channels that
    `channels(db)` builds (from the settings when None; `envoi.testing` builds recording ones), and the
    application's jobs declared so far with `@job`; tests pass a registry of their own when the handlers
    are not what they test."""

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
        # Before anything that makes spans; process-wide, as OpenTelemetry's provider is.
        tracing.configure(enabled=settings.tracing_enabled, exporter=settings.otel_traces_exporter)
        self.db = Database(
            settings.database_url,
            schema=settings.database_schema,
            connect_timeout_s=settings.database_connect_timeout_s,
            statement_timeout_s=settings.database_statement_timeout_s,
            pool_size=settings.database_pool,
        )
        self.registry = registry if registry is not None else HandlerRegistry()
        #: Told of every final failure, by the worker and by the inline fallback.
        self.recorders: list[FailureRecorder] = [LoggingFailureRecorder()]
        self.queue = QueueService(settings, self.registry, self.recorders)
        #: What happened to messages and dead letters; the webhook publisher subscribes.
        self.events = EventBus(self.db)
        self.recorders.append(
            SqlFailureRecorder(self.db, on_recorded=self.queue.failure_recorded, events=self.events)
        )
        self.dead_letters = FailedJobService(db=self.db, queue=self.queue, events=self.events)
        self.ledger = DeliveryLedger(self.db, lease_s=settings.delivery_lease_s)
        #: Delayed messages and their cancellations, in SQL (checked by the handlers before sending).
        self.schedule = ScheduleBook(self.db)
        #: The HTTP Idempotency-Key, in SQL: it holds with Redis down.
        self.idempotency = IdempotencyKeys(self.db)
        #: What recipients decided (opt-outs, quiet hours), in SQL; checked by the handlers at send time.
        self.preferences = PreferencesService(self.db)
        self.unsubscribe_tokens = (
            UnsubscribeTokens(settings.unsubscribe_secret.get_secret_value().encode())
            if settings.unsubscribe_secret
            else None
        )
        self.policy = RecipientPolicy(
            preferences=self.preferences,
            quiet_hours=QuietHours.parse(settings.quiet_hours),
            default_timezone=settings.default_timezone,
            tokens=self.unsubscribe_tokens,
            api_url=settings.api_url,
        )
        self.notifications = NotificationsService(
            settings=settings, queue=self.queue, schedule=self.schedule, policy=self.policy
        )
        #: The in-app digest (DIGEST_WINDOW): armed by the in-app handler, sent by its own job.
        self.digests = InboxDigests(
            db=self.db,
            queue=self.queue,
            preferences=self.preferences,
            renderer=self.notifications.renderer,
            window=settings.digest_window,
            locale=settings.default_locale,
        )
        self.webhooks = WebhookEndpointService(db=self.db, queue=self.queue, settings=settings)
        self.channels: Channels | None = None
        self._webhook_http: httpx.AsyncClient | None = None
        if registry is None:
            self.channels = (
                channels(self.db)
                if channels
                else Channels.from_settings(settings, self.db, limiter=self.queue.rate_limits)
            )
            NotificationHandlers(
                self.channels,
                self.ledger,
                self.schedule,
                events=self.events,
                policy=self.policy,
                digests=self.digests,
            ).register(self.registry)
            self.digests.register(self.registry)
            self._webhook_http = webhook_client(settings)
            WebhookDelivery(db=self.db, settings=settings, http=self._webhook_http).register(self.registry)
            self.events.subscribe(self.webhooks.publish, acts_when=ANY_ENABLED_ENDPOINT)
            self._register_declared_jobs()

    def _register_declared_jobs(self) -> None:
        for definition in DECLARED_JOBS.values():
            self.registry.register(
                definition.name, definition.handler, model=definition.model, queue=definition.queue
            )
        if DECLARED_JOBS:
            log.info("Application jobs registered: %s", ", ".join(sorted(DECLARED_JOBS)))
        # ENVOI_JOBS is imported by the doors (`envoi worker`, `envoi api`): say so when a program that
        # builds `Envoi` itself has not imported a module it names.
        missing = [module for module in self.settings.envoi_jobs if module not in sys.modules]
        if missing:
            log.warning(
                "ENVOI_JOBS names %s, not imported in this process: its jobs are not registered "
                "(import it before building Envoi, or call envoi.runtime.import_job_modules)",
                ", ".join(missing),
            )

    def worker_companions(self, queues: Sequence[str]) -> list[Companion]:
        """What runs beside a worker serving `queues`, until it stops."""
        reconciler = Reconciler(
            db=self.db,
            failed_set=self.queue.failed_set,
            recorder=SqlFailureRecorder(self.db, events=self.events),
            queues=queues,
            interval_s=self.settings.dlq_reconcile_interval_s,
        )
        companions: list[Companion] = [reconciler.run_forever, self.idempotency.purge_forever]
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
