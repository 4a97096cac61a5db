"""The admin API: queue counts and the dead letters (list, show, retry, delete), recipients masked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse

from envoi.api.deps import Admin, EnvoiDep, FailedJobsDep, LedgerDep
from envoi.api.schemas import (
    Count,
    DeliveryItem,
    DeliveryPage,
    FailedJobItem,
    FailedJobPage,
    FailureHistogram,
    HourBucket,
    Problem,
    ProviderStatus,
    QueuesOverview,
    QueueState,
    RetryAccepted,
    RetryFailedAgain,
)
from envoi.channels import provider_report
from envoi.db.models import DeliveryStatus, FailedJob, FailedJobStatus
from envoi.dead_letters.service import (
    MAX_LIMIT,
    FailedJobFilters,
    FailedJobNotFoundError,
    FailedJobNotResolvableError,
    FailedJobNotRetryableError,
    FailedJobService,
    failed_on_invalid_data,
    row_as_dict,
)
from envoi.deliveries import NOT_SENT_STATUSES
from envoi.errors import QueueUnavailableError
from envoi.masking import mask_recipient, mask_text
from envoi.queue.names import QUEUE_NAMES
from envoi.runtime import Envoi

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Admin])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such dead letter"}}
FailedJobId = Annotated[str, Path(alias="id", min_length=1, max_length=64)]


@dataclass(frozen=True, slots=True)
class FilterParams:
    queue_name: str | None
    job_name: str | None
    status: FailedJobStatus | None

    def filters(self) -> FailedJobFilters:
        return FailedJobFilters(queue_name=self.queue_name, job_name=self.job_name, status=self.status)


async def filter_params(
    queue_name: Annotated[str | None, Query(alias="queueName", max_length=100)] = None,
    job_name: Annotated[str | None, Query(alias="jobName", max_length=100)] = None,
    status: Annotated[FailedJobStatus | None, Query(description="FAILED, RETRIED or RESOLVED")] = None,
) -> FilterParams:
    return FilterParams(queue_name or None, job_name or None, status)


Filters = Annotated[FilterParams, Depends(filter_params)]


def item(row: FailedJob, service: FailedJobService | None = None) -> FailedJobItem:
    """The row with recipients masked: in the payload, and in the error and stack traces that quote them;
    with `service`, what a retry of its data would meet (the page warns before such a retry)."""
    fields = row_as_dict(row)
    fields["failed_on_invalid_data"] = failed_on_invalid_data(row)
    fields["data_problems"] = service.data_problems(row) if service is not None else None
    return FailedJobItem.model_validate(fields)


async def _paused(envoi: Envoi, queue: str) -> bool | None:
    try:
        return await envoi.queue.inspector.paused(queue)
    except QueueUnavailableError:
        return None


@router.get("/queues", response_model=QueuesOverview)
async def queues(envoi: EnvoiDep) -> QueuesOverview:
    """Jobs per state in each queue (null when Redis cannot be asked), whether jobs run inline, and each
    provider's circuit and rate-limit waits."""
    states = [
        QueueState(name=name, counts=await envoi.queue.counts(name), paused=await _paused(envoi, name))
        for name in QUEUE_NAMES
    ]
    circuits = envoi.channels.provider_states() if envoi.channels is not None else []
    reports = await provider_report(circuits, envoi.queue.rate_limits, envoi.settings.rate_limits)
    return QueuesOverview(
        queue_enabled=envoi.settings.queue_enabled,
        fallback_active=envoi.queue.fallback_active,
        queues=states,
        providers=[ProviderStatus.model_validate(report, from_attributes=True) for report in reports],
    )


@router.get("/failed-jobs", response_model=FailedJobPage)
async def list_failed_jobs(
    params: Filters,
    service: FailedJobsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")] = None,
) -> FailedJobPage:
    """Newest first; pass `nextCursor` back as `cursor` for the next page."""
    page = await service.page(params.filters(), limit=limit, cursor=cursor)
    return FailedJobPage(items=[item(row, service) for row in page.items], next_cursor=page.next_cursor)


@router.get("/failure-histogram", response_model=FailureHistogram)
async def failure_histogram(service: FailedJobsDep) -> FailureHistogram:
    """Dead letters created in each of the last 24 hours (UTC), oldest first."""
    hours = await service.per_hour()
    return FailureHistogram(hours=[HourBucket(start=start, count=count) for start, count in hours])


@router.post("/failed-jobs/retry", response_model=Count)
async def retry_failed_jobs(params: Filters, service: FailedJobsDep) -> Count:
    """Retry every FAILED dead letter matching the filters; returns how many were retried (without a
    queue they ran inline, and those that failed again are new dead letters)."""
    return Count(count=(await service.retry_many(params.filters())).total)


@router.post("/failed-jobs/delete", response_model=Count)
async def delete_failed_jobs(params: Filters, service: FailedJobsDep) -> Count:
    """Delete every dead letter matching the filters (all of them when no filter is given)."""
    return Count(count=await service.delete_many(params.filters()))


@router.get("/failed-jobs/{id}", response_model=FailedJobItem, responses=NOT_FOUND)
async def get_failed_job(failed_job_id: FailedJobId, service: FailedJobsDep) -> FailedJobItem:
    row = await service.get(failed_job_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such dead letter")
    return item(row, service)


@router.post(
    "/failed-jobs/{id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryAccepted,
    responses={
        **NOT_FOUND,
        200: {"model": RetryAccepted, "description": "No queue: the job ran inline and succeeded"},
        409: {"model": Problem, "description": "Already retried or resolved"},
        502: {"model": RetryFailedAgain, "description": "No queue: the job ran inline and failed again"},
    },
)
async def retry_failed_job(
    failed_job_id: FailedJobId, service: FailedJobsDep, response: Response
) -> RetryAccepted | JSONResponse:
    """Enqueue the job again and mark the dead letter RETRIED.

    `202 {"jobId", "mode": "queued"}`: in Redis, a worker will run it. Without a queue (QUEUE_ENABLED=false,
    or Redis down) the job runs inline, now: `200 {"jobId", "mode": "sync"}` when it succeeded, `502
    {"detail", "jobId", "newFailedJobId"}` when it failed again (which recorded a new dead letter).
    """
    try:
        outcome = await service.retry(failed_job_id)
    except FailedJobNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such dead letter") from None
    except FailedJobNotRetryableError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    job_id = outcome.enqueued.job_id
    if outcome.failed_again:
        new_id = outcome.new_dead_letter.id if outcome.new_dead_letter else None
        failed = RetryFailedAgain(
            detail=f"Dead letter {failed_job_id} ran inline and failed again"
            + (f": new dead letter {new_id}" if new_id else ""),
            job_id=job_id,
            new_failed_job_id=new_id,
        )
        return JSONResponse(failed.model_dump(by_alias=True), status_code=status.HTTP_502_BAD_GATEWAY)
    if outcome.enqueued.mode == "sync":
        response.status_code = status.HTTP_200_OK
    return RetryAccepted(job_id=job_id, mode=outcome.enqueued.mode)


@router.delete("/failed-jobs/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_failed_job(failed_job_id: FailedJobId, service: FailedJobsDep) -> Response:
    if not await service.delete(failed_job_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such dead letter")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/failed-jobs/{id}/resolve",
    response_model=FailedJobItem,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "Already retried"}},
)
async def resolve_failed_job(failed_job_id: FailedJobId, service: FailedJobsDep) -> FailedJobItem:
    """Mark a FAILED dead letter RESOLVED (handled by hand; it can no longer be retried). Resolving a
    RESOLVED one answers it as it is; a RETRIED one is a 409."""
    try:
        row = await service.resolve(failed_job_id)
    except FailedJobNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such dead letter") from None
    except FailedJobNotResolvableError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return item(row, service)


@router.get("/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    ledger: LedgerDep,
    statuses: Annotated[
        list[DeliveryStatus] | None,
        Query(alias="status", description="Ledger statuses (repeatable); the ones not sent by default"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> DeliveryPage:
    """The delivery ledger's latest rows in some statuses, last changed first: by default the messages
    envoi decided not to send (a channel off, a schedule cancelled), with the reason."""
    rows = await ledger.latest(tuple(statuses or NOT_SENT_STATUSES), limit=limit)
    return DeliveryPage(
        items=[
            DeliveryItem(
                id=row.id,
                channel=row.channel,
                provider=row.provider,
                recipient=mask_recipient(row.recipient),
                status=row.status,
                template_key=row.template_key,
                error_code=row.error_code,
                error_message=mask_text(row.error_message) if row.error_message else None,
                attempts=row.attempts,
                updated_at=row.updated_at,
            )
            for row in rows
        ]
    )
