"""Raw jobs: `POST /v1/jobs/{jobName}` with the job's data, as a Node producer would add it, and
`POST /v1/jobs/{jobName}/batch` with up to 1,000 of them (`{"items": [...]}`), added in bulk.

`jobName` is one of envoi's four notification jobs or a job the application declared with `@job` (loaded
by `envoi api --jobs` / ENVOI_JOBS); any other name is a 404. The body is validated by the job's model
(a 422 names the field) and enqueued on the job's queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from envoi.api.deps import ApiKey, EnvoiDep, IdempotencyDep, IdempotencyKey
from envoi.api.intake import (
    JOB_CHANNELS,
    Submission,
    channel_warnings,
    submit,
    submit_batch,
    submit_job,
    with_idempotency_key,
    with_item_key,
)
from envoi.api.schemas import BatchAccepted, BatchJob, JobAccepted, JobBatch, Problem, ValidationProblem
from envoi.notifications.jobs import JOB_MODELS, NotificationJob, parse_job
from envoi.queue.base import EnqueueResult
from envoi.queue.jobs import JOB_NAME_PATTERN, HandlerRegistry, validate_items
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.service import QueueService

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[ApiKey])

ACCEPTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobAccepted, "description": "Idempotency-Key seen before: the first request's job"},
    422: {"model": ValidationProblem, "description": "The body fails validation"},
}
JOB_PATH = "/jobs/{jobName}"


def job_schemas(models: Iterable[type[BaseModel]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The models' JSON schemas as OpenAPI references and the definitions they point to."""
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "validation") for model in dict.fromkeys(models)
    ]
    refs, defs = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    return [refs[key] for key in keys], defs.get("$defs", {})


def known_jobs(registry: HandlerRegistry) -> dict[str, type[BaseModel] | None]:
    """Every job name this API accepts, with its model: envoi's four and the registry's."""
    jobs: dict[str, type[BaseModel] | None] = dict(JOB_MODELS)
    for name in registry:
        jobs.setdefault(name, registry.model(name))
    return dict(sorted(jobs.items()))


JOB_SCHEMA_REFS, _ = job_schemas(JOB_MODELS.values())

EXAMPLES = {
    "SEND_EMAIL": {"to": "jane@example.com", "subject": "Hello", "html": "<p>Hello</p>"},
    "SEND_SMS": {"to": "+33612345678", "message": "Your code is 123456"},
    "CREATE_INAPP_NOTIFICATION": {"userId": "user_1", "title": "Welcome", "message": "Hello"},
}


def accepted(submission: Submission, response: Response, warnings: list[str]) -> JobAccepted:
    """202 for a new job; 200 (and the first job's mode is not known) for a repeated key. `warnings`
    name the channels switched off for this job."""
    if submission.mode is None:
        response.status_code = status.HTTP_200_OK
        return JobAccepted(job_id=submission.job_id, mode="queued", warnings=warnings)
    return JobAccepted(job_id=submission.job_id, mode=submission.mode, warnings=warnings)


@router.post(
    JOB_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={**ACCEPTED_RESPONSES, 404: {"model": Problem, "description": "No job of that name"}},
    summary="Enqueue one job",
    # The body is validated by the job's own model (the one named in the path), after routing. The
    # application's jobs are added to this schema and to jobName's enum when the document is built.
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"anyOf": JOB_SCHEMA_REFS}}}}},
)
async def enqueue_job(
    job_name: Annotated[
        str,
        Path(alias="jobName", pattern=JOB_NAME_PATTERN, description="envoi's four jobs, or one of yours"),
    ],
    envoi: EnvoiDep,
    store: IdempotencyDep,
    response: Response,
    data: dict[str, Any] = Body(
        description="The job's data (camelCase for envoi's jobs), validated with the job's model",
        openapi_examples={name: {"value": value} for name, value in EXAMPLES.items()},
    ),
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    if job_name in JOB_MODELS:
        # envoi's own jobs: the Idempotency-Key also names the message in the delivery ledger.
        job = parse_job(job_name, with_idempotency_key(data, idempotency_key))
        submission = await submit_job(envoi.queue, store, job=job, idempotency_key=idempotency_key)
        channel = JOB_CHANNELS.get(job_name)
        return accepted(submission, response, channel_warnings(envoi.settings, [channel] if channel else []))
    registration = envoi.registry.get(job_name)
    if registration is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job named {job_name!r}")
    submission = await submit(
        envoi.queue,
        store,
        queue_name=registration.queue,
        job_name=job_name,
        # Validated here, before the Idempotency-Key is claimed: a 422 leaves no trace.
        data=envoi.registry.validate(job_name, data),
        idempotency_key=idempotency_key,
    )
    return accepted(submission, response, [])


@router.post(
    JOB_PATH + "/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses={
        200: {"model": BatchAccepted, "description": "Idempotency-Key seen before: the first batch's jobs"},
        422: {"model": ValidationProblem, "description": "An item fails validation (`items.3.to`)"},
        404: {"model": Problem, "description": "No job of that name"},
    },
    summary="Enqueue up to 1,000 jobs of one name",
)
async def enqueue_batch(
    job_name: Annotated[
        str,
        Path(alias="jobName", pattern=JOB_NAME_PATTERN, description="envoi's four jobs, or one of yours"),
    ],
    envoi: EnvoiDep,
    store: IdempotencyDep,
    response: Response,
    batch: JobBatch,
    idempotency_key: IdempotencyKey = None,
) -> BatchAccepted:
    """Every item is validated before any is enqueued: one bad item is a 422 naming it by its index, and
    nothing is enqueued. The Idempotency-Key covers the whole batch (a repeat answers 200 with the first
    batch's job ids); each of envoi's messages gets `{key}#{index}` as its own ledger key."""
    items, warnings = batch.items, []
    enqueue: Callable[[list[str]], Awaitable[list[EnqueueResult]]]
    if job_name in JOB_MODELS:
        jobs = validate_items(
            job_name,
            len(items),
            lambda index: parse_job(job_name, with_item_key(items[index], idempotency_key, index)),
        )
        enqueue = partial(_enqueue_jobs, envoi.queue, jobs)
        channel = JOB_CHANNELS.get(job_name)
        warnings = channel_warnings(envoi.settings, [channel] if channel else [])
    else:
        registration = envoi.registry.get(job_name)
        if registration is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job named {job_name!r}")
        payloads = validate_items(
            job_name, len(items), lambda index: envoi.registry.validate(job_name, items[index])
        )
        enqueue = partial(_enqueue_many, envoi.queue, registration.queue, job_name, payloads)
    submissions = await submit_batch(
        store, job_name=job_name, count=len(items), idempotency_key=idempotency_key, enqueue=enqueue
    )
    if any(submission.mode is None for submission in submissions):
        response.status_code = status.HTTP_200_OK
    return BatchAccepted(
        jobs=[BatchJob(job_id=s.job_id, mode=s.mode or "queued") for s in submissions], warnings=warnings
    )


async def _enqueue_jobs(
    queue: QueueService, jobs: list[NotificationJob], job_ids: list[str]
) -> list[EnqueueResult]:
    return await queue.enqueue_jobs(NOTIFICATIONS_QUEUE, jobs, job_ids=job_ids)


async def _enqueue_many(
    queue: QueueService, queue_name: str, job_name: str, payloads: list[dict[str, Any]], job_ids: list[str]
) -> list[EnqueueResult]:
    return await queue.enqueue_many(queue_name, job_name, payloads, job_ids=job_ids)
