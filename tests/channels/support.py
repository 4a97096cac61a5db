"""Helpers for the channel tests: a failure recorder, a ledger reader, job data builders."""

from __future__ import annotations

from typing import Any

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


def context(name: str, data: dict[str, Any], *, job_id: str = "1", attempt: int = 1) -> JobContext:
    """What the worker hands a handler, for running one directly (`envoi.registry.run`)."""
    return JobContext(
        queue=NOTIFICATIONS_QUEUE,
        name=name,
        data=data,
        job_id=job_id,
        attempt=attempt,
        max_attempts=5,
        mode="queued",
    )
