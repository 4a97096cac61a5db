"""envoi: an API's side effects (email, SMS, WhatsApp, in-app, your own jobs) off the request path, on BullMQ."""

from envoi.config import Settings, load_settings
from envoi.errors import (
    ConfigError,
    DatabaseUnavailableError,
    DeferredError,
    DeliveryError,
    EnvoiError,
    InvalidJobDataError,
    JobError,
    PermanentDeliveryError,
    QueueUnavailableError,
    Retry,
    TemplateError,
    TransientDeliveryError,
    UnknownJobError,
)
from envoi.queue import (
    NOTIFICATIONS_QUEUE,
    WEBHOOKS_QUEUE,
    EnqueueResult,
    HandlerRegistry,
    JobContext,
    JobName,
    QueueService,
)
from envoi.queue.jobs import job
from envoi.runtime import Envoi
from envoi.sync_client import SyncClient

__version__ = "0.1.0"

__all__ = [
    "NOTIFICATIONS_QUEUE",
    "WEBHOOKS_QUEUE",
    "ConfigError",
    "DatabaseUnavailableError",
    "DeferredError",
    "DeliveryError",
    "EnqueueResult",
    "Envoi",
    "EnvoiError",
    "HandlerRegistry",
    "InvalidJobDataError",
    "JobContext",
    "JobError",
    "JobName",
    "PermanentDeliveryError",
    "QueueService",
    "QueueUnavailableError",
    "Retry",
    "Settings",
    "SyncClient",
    "TemplateError",
    "TransientDeliveryError",
    "UnknownJobError",
    "job",
    "load_settings",
]
