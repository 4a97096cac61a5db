"""Accepting a job from the API: validated by the job's model, Idempotency-Key honoured, enqueued.

The key is claimed in SQL (`envoi.notifications.idempotency`) before anything is enqueued, Redis up or
down; a database that does not answer makes the request a 503 (`DatabaseUnavailableError`), never a
second job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from envoi.config import Settings
from envoi.db.types import new_id
from envoi.notifications.idempotency import IdempotencyKeys, KeyClaim
from envoi.queue.base import EnqueueResult
from envoi.queue.jobs import JobPayload, Mode
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.queue.service import QueueService

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Submission:
    job_id: str
    #: None when the key was seen before: nothing was enqueued, so there is no mode to report.
    mode: Mode | None


def with_idempotency_key(data: dict[str, Any], key: str | None) -> dict[str, Any]:
    """The job data with the request's Idempotency-Key as `metadata.idempotencyKey` (the ledger's key
    too). A metadata that is not an object is left as it is, for validation to refuse."""
    metadata = data.get("metadata")
    if key is None or not (metadata is None or isinstance(metadata, dict)):
        return data
    return {**data, "metadata": {**(metadata or {}), "idempotencyKey": key}}


async def submit_job(
    queue: QueueService,
    keys: IdempotencyKeys,
    *,
    job: JobPayload,
    idempotency_key: str | None,
) -> Submission:
    """Enqueue a notification job built through its model, once per Idempotency-Key. The model has
    validated it: it is not validated again (`enqueue_job`)."""
    return await _submit_one(
        keys,
        job_name=job.JOB_NAME,
        idempotency_key=idempotency_key,
        enqueue=lambda job_id: queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=job_id),
    )


async def submit(
    queue: QueueService,
    keys: IdempotencyKeys,
    *,
    queue_name: str,
    job_name: str,
    data: dict[str, Any],
    idempotency_key: str | None,
) -> Submission:
    """Enqueue a job (validated by `enqueue` when its name has a model), once per Idempotency-Key: a
    repeated key answers the first request's job id."""
    return await _submit_one(
        keys,
        job_name=job_name,
        idempotency_key=idempotency_key,
        enqueue=lambda job_id: queue.enqueue(queue_name, job_name, data, job_id=job_id),
    )


async def _submit_one(
    keys: IdempotencyKeys,
    *,
    job_name: str,
    idempotency_key: str | None,
    enqueue: Callable[[str], Awaitable[EnqueueResult]],
) -> Submission:
    job_id = new_id()
    outcome = await _once(keys, job_name, idempotency_key, job_id, lambda: enqueue(job_id))
    if isinstance(outcome, KeyClaim):
        return Submission(job_id=outcome.job_id, mode=None)
    return Submission(job_id=outcome.job_id, mode=outcome.mode)


async def _once(
    keys: IdempotencyKeys,
    scope: str,
    idempotency_key: str | None,
    claim_id: str,
    enqueue: Callable[[], Awaitable[T]],
) -> T | KeyClaim:
    """`enqueue()`, once per Idempotency-Key: the earlier request's claim when the key was seen. An
    enqueue that raises gives the key back (only this request's claim: `claim_id`)."""
    if idempotency_key is not None:
        claim = await keys.claim(scope, idempotency_key, claim_id)
        if claim.outcome == "seen":
            return claim
    try:
        return await enqueue()
    except BaseException:
        if idempotency_key is not None:
            await keys.release(scope, idempotency_key, claim_id)
        raise


#: A batch's Idempotency-Key is claimed under its own scope: the same key may name a single job too.
BATCH_SCOPE = "{job_name}/batch"


def batch_job_ids(batch_id: str, count: int) -> list[str]:
    """A batch's job ids, `{batchId}-{index}`: a repeated Idempotency-Key answers them from the claim
    (`{batchId}.{count}`) without storing each one."""
    return [f"{batch_id}-{index}" for index in range(count)]


def with_item_key(data: dict[str, Any], key: str | None, index: int) -> dict[str, Any]:
    """`with_idempotency_key` for item `index` of a batch: each message needs its own ledger key
    (`{key}#{index}`), or the ledger would send the first and skip the others as repeats."""
    return with_idempotency_key(data, None if key is None else f"{key}#{index}")


async def submit_batch(
    keys: IdempotencyKeys,
    *,
    job_name: str,
    count: int,
    idempotency_key: str | None,
    enqueue: Callable[[list[str]], Awaitable[list[EnqueueResult]]],
) -> list[Submission]:
    """Enqueue a batch of `count` jobs (`enqueue(job_ids)`), once per Idempotency-Key: the key covers
    the whole batch, and a repeated key answers the first request's job ids."""
    batch_id = new_id()
    scope = BATCH_SCOPE.format(job_name=job_name)
    job_ids = batch_job_ids(batch_id, count)
    outcome = await _once(keys, scope, idempotency_key, f"{batch_id}.{count}", lambda: enqueue(job_ids))
    if isinstance(outcome, KeyClaim):
        first_id, _, first_count = outcome.job_id.rpartition(".")
        return [Submission(job_id, None) for job_id in batch_job_ids(first_id, int(first_count))]
    return [Submission(result.job_id, result.mode) for result in outcome]


#: The channel each raw job sends through, when it can be switched off.
JOB_CHANNELS: dict[str, str] = {JobName.SEND_SMS: "sms", JobName.SEND_WHATSAPP: "whatsapp"}


def channel_warnings(settings: Settings, channels: Iterable[str]) -> list[str]:
    """One line per channel that is switched off: the job is accepted, and completes without sending
    (its ledger row says CANCELLED). The caller learns it now rather than from a missing message."""
    return [
        f"{channel}: {reason}: the message is accepted but will not be sent"
        for channel in dict.fromkeys(channels)
        if (reason := settings.channel_off_reason(channel)) is not None
    ]
