"""Accepting a raw job from the API: validate with the job's model, honour Idempotency-Key, enqueue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoi.api.idempotency import IdempotencyStore
from envoi.config import Settings
from envoi.db.types import new_id
from envoi.queue.jobs import Mode
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from envoi.validation import check_sizes


@dataclass(frozen=True, slots=True)
class Submission:
    job_id: str
    #: None when the key was seen before: nothing was enqueued, so there is no mode to report.
    mode: Mode | None


def validated(job_name: str, data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The job's data as its model dumps it; raises `InvalidJobDataError` naming the bad field, or
    saying it is over MAX_JOB_DATA_BYTES / MAX_METADATA_BYTES (as the worker would, later)."""
    from envoi.notifications.jobs import parse_job

    model = parse_job(job_name, data)
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    check_sizes(
        job_name,
        dumped,
        max_data_bytes=settings.max_job_data_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
    )
    return dumped


async def submit_job(
    envoi: Envoi,
    store: IdempotencyStore,
    *,
    job_name: str,
    data: dict[str, Any],
    idempotency_key: str | None,
) -> Submission:
    metadata = data.get("metadata")
    if idempotency_key is not None and (metadata is None or isinstance(metadata, dict)):
        # A metadata that is not an object is left for validation to refuse.
        data = {**data, "metadata": {**(metadata or {}), "idempotencyKey": idempotency_key}}
    payload = validated(job_name, data, envoi.settings)
    job_id = new_id()
    if idempotency_key is not None:
        claim = await store.claim(job_name, idempotency_key, job_id)
        if claim.outcome == "seen":
            return Submission(job_id=claim.job_id, mode=None)
    try:
        result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, job_name, payload, job_id=job_id)
    except BaseException:
        if idempotency_key is not None:
            await store.release(job_name, idempotency_key)
        raise
    return Submission(job_id=result.job_id, mode=result.mode)
