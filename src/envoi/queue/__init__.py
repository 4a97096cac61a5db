"""The queue: names, default options, and `QueueService` over a Redis backend and an inline fallback."""

from envoi.queue.base import EnqueueResult
from envoi.queue.jobs import FailureRecorder, FinalFailure, HandlerRegistry, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE, QUEUE_NAMES, WEBHOOKS_QUEUE, JobName
from envoi.queue.service import QueueService

__all__ = [
    "NOTIFICATIONS_QUEUE",
    "QUEUE_NAMES",
    "WEBHOOKS_QUEUE",
    "EnqueueResult",
    "FailureRecorder",
    "FinalFailure",
    "HandlerRegistry",
    "JobContext",
    "JobName",
    "QueueService",
]
