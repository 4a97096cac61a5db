"""The `DELIVER_WEBHOOK` job on the `webhooks` queue: one event to one endpoint.

    {"endpointId", "eventId", "type", "timestamp", "payload"}

`eventId` is the `webhook-id` header, the same on every retry; `payload` is the JSON body. The secret is
not in the job (Redis, bullmq's failed set and the dead letters would keep it): the handler reads it
from `webhook_endpoints` at each attempt.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from envoi.config import Settings
from envoi.queue.jobs import wire_form
from envoi.validation import CleanInput

DELIVER_WEBHOOK = "DELIVER_WEBHOOK"


class DeliverWebhookJob(CleanInput):
    JOB_NAME: ClassVar[str] = DELIVER_WEBHOOK

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    endpoint_id: str = Field(min_length=1, max_length=26)
    #: No `.`: the id is part of the signed string `{id}.{timestamp}.{body}`.
    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    type: str = Field(min_length=1, max_length=100)
    #: When the event happened (ISO 8601); the `webhook-timestamp` header is the attempt's time.
    timestamp: str
    payload: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return wire_form(self)


def delivery_job_id(event_id: str, endpoint_id: str) -> str:
    """One job per event and endpoint: publishing an event twice adds it once (while bullmq holds it)."""
    return f"webhook-{event_id}-{endpoint_id}"


def webhook_job_options(settings: Settings) -> dict[str, Any]:
    """WEBHOOK_JOB_ATTEMPTS (8) with exponential backoff from WEBHOOK_BACKOFF_DELAY_MS (10 min):
    retries 10, 20, 40, 80, 160, 320 and 640 min after each failure, about 21 h in all."""
    return {
        "attempts": settings.webhook_job_attempts,
        "backoff": {"type": "exponential", "delay": settings.webhook_backoff_delay_ms},
    }
