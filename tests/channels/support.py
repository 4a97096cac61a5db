"""Helpers for the channel tests: a failure recorder, a ledger reader, job data builders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from envoi.db.models import MessageDelivery
from envoi.deliveries import DeliveryLedger
from envoi.queue.jobs import FinalFailure, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi

EMAIL_TO = "jeanne.martin@example.com"
PHONE_TO = "+33612345678"


class Recorder:
    """Collects final failures (appended to `envoi.recorders`, beside the SQL one)."""

    def __init__(self) -> None:
        self.failures: list[FinalFailure] = []

    async def record(self, failure: FinalFailure) -> None:
        self.failures.append(failure)


def ledger(envoi: Envoi) -> DeliveryLedger:
    return DeliveryLedger(envoi.db, lease_s=envoi.settings.delivery_lease_s)


async def delivery(envoi: Envoi, key: str) -> MessageDelivery | None:
    return await ledger(envoi).get(key)


async def job_delivery(envoi: Envoi, job_id: str) -> MessageDelivery | None:
    """The row of a queued job keyed by its bullmq id (`job:notifications:{id}:{created at}`)."""
    pattern = f"job:{NOTIFICATIONS_QUEUE}:{job_id}:%"
    async with envoi.db.session() as session:
        row: MessageDelivery | None = await session.scalar(
            select(MessageDelivery).where(MessageDelivery.idempotency_key.like(pattern))
        )
        return row


def email_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "to": EMAIL_TO,
        "subject": "Votre rendez-vous",
        "html": "<p>Bonjour Jeanne</p>",
        "text": "Bonjour Jeanne",
    }
    data.update(overrides)
    return data


def text_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"to": PHONE_TO, "message": "Rappel : RDV demain 10h"}
    data.update(overrides)
    return data


#: A job's creation time for jobs run directly (bullmq's `timestamp`, ms).
CREATED_AT_MS = 1_767_225_600_000
#: The ledger key of a job run directly with `context()`'s defaults, no idempotency key, no flow.
DIRECT_KEY = f"job:{NOTIFICATIONS_QUEUE}:1:{CREATED_AT_MS}"


def context(
    name: str,
    data: dict[str, Any],
    *,
    job_id: str = "1",
    attempt: int = 1,
    created_at_ms: int = CREATED_AT_MS,
) -> JobContext:
    """What the worker hands a handler, for running one directly (`envoi.registry.run`)."""
    return JobContext(
        queue=NOTIFICATIONS_QUEUE,
        name=name,
        data=data,
        job_id=job_id,
        created_at_ms=created_at_ms,
        attempt=attempt,
        max_attempts=5,
        mode="queued",
    )
