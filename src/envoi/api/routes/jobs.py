"""Raw jobs: `POST /v1/jobs/{jobName}` with the job's data, as a Node producer would add it.

`jobName` is one of envoi's four notification jobs or a job the application declared with `@job` (loaded
by `envoi api --jobs` / ENVOI_JOBS); any other name is a 404. The body is validated by the job's model
(a 422 names the field) and enqueued on the job's queue.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    submit_job,
    with_idempotency_key,
)
from envoi.api.schemas import JobAccepted, Problem, ValidationProblem
from envoi.notifications.jobs import JOB_MODELS, parse_job
from envoi.queue.jobs import JOB_NAME_PATTERN, HandlerRegistry

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
