"""Raw jobs: `POST /v1/jobs/{jobName}` with the job's data, as a Node producer would add it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response, status
from pydantic.json_schema import models_json_schema

from envoi.api.deps import ApiKey, EnvoiDep, IdempotencyDep, IdempotencyKey
from envoi.api.intake import JOB_CHANNELS, Submission, channel_warnings, submit_job, with_idempotency_key
from envoi.api.schemas import JobAccepted, ValidationProblem
from envoi.notifications.jobs import JOB_MODELS, parse_job
from envoi.queue.names import JobName

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[ApiKey])

ACCEPTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobAccepted, "description": "Idempotency-Key seen before: the first request's job"},
    422: {"model": ValidationProblem, "description": "The body fails validation"},
}


def _job_schemas() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The four job models' JSON schemas, for the OpenAPI document (see `envoi.api.app`)."""
    refs, defs = models_json_schema(
        [(model, "validation") for model in JOB_MODELS.values()], ref_template="#/components/schemas/{model}"
    )
    return [refs[(model, "validation")] for model in JOB_MODELS.values()], defs.get("$defs", {})


JOB_SCHEMA_REFS, JOB_SCHEMA_DEFS = _job_schemas()

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
    "/jobs/{jobName}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses=ACCEPTED_RESPONSES,
    summary="Enqueue one job",
    # The body is validated by the job's own model (the one named in the path), after routing.
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"anyOf": JOB_SCHEMA_REFS}}}}},
)
async def enqueue_job(
    job_name: Annotated[JobName, Path(alias="jobName", description="One of the four job names")],
    envoi: EnvoiDep,
    store: IdempotencyDep,
    response: Response,
    data: dict[str, Any] = Body(
        description="The job's data (camelCase), validated with the job's model",
        openapi_examples={name: {"value": value} for name, value in EXAMPLES.items()},
    ),
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    job = parse_job(job_name.value, with_idempotency_key(data, idempotency_key))
    submission = await submit_job(envoi.queue, store, job=job, idempotency_key=idempotency_key)
    channel = JOB_CHANNELS.get(job_name)
    return accepted(submission, response, channel_warnings(envoi.settings, [channel] if channel else []))
