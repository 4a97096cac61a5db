"""The operations console's API: bullmq's jobs in every state, one job, promote, cancel, pause, resume,
clean; the workers; completed and failed jobs per minute; search by job id or recipient.

Admin auth as every `/v1/admin` route. An unknown queue is a 404, a job in the wrong state for the action
a 409, Redis unreachable a 503 (`envoi.api.errors`). Recipients are masked in everything returned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status

from envoi.api.deps import Admin, EnvoiDep
from envoi.api.errors import invalid
from envoi.api.queue_schemas import (
    Cleaned,
    DeadLetterRef,
    JobDetail,
    JobItem,
    JobPage,
    MinuteBucket,
    QueuePaused,
    SearchHit,
    SearchResult,
    Throughput,
    WorkerItem,
    WorkerList,
)
from envoi.api.schemas import Problem
from envoi.db.models import FailedJob
from envoi.masking import mask_payload, mask_text
from envoi.notifications.handlers import not_sent_reason
from envoi.queue.inspect import JobNotFoundError, JobView, ListedState, UnknownQueueError, parse_duration_ms
from envoi.queue.recipients import normalise
from envoi.runtime import Envoi

router = APIRouter(prefix="/v1/admin", tags=["admin: queues"], dependencies=[Admin])

QueueName = Annotated[str, Path(alias="queue", min_length=1, max_length=100)]
JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=255)]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "Redis cannot be asked"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such queue or job"},
    **UNAVAILABLE,
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The job is not in a state that allows it"},
    **NOT_FOUND,
}
MAX_LIMIT = 500
#: Search answers at most this many hits per kind of match.
SEARCH_LIMIT = 50


def job_item(view: JobView) -> JobItem:
    return JobItem(
        id=view.id,
        queue=view.queue,
        name=view.name,
        state=view.state,
        data=mask_payload(view.data),
        attempts_made=view.attempts_made,
        max_attempts=view.max_attempts,
        created_at=view.created_at,
        run_at=view.run_at,
        processed_at=view.processed_at,
        finished_at=view.finished_at,
        failed_reason=mask_text(view.failed_reason) if view.failed_reason else None,
        priority=view.priority,
        not_sent=not_sent_reason(view.return_value) if view.state == "completed" else None,
    )


def _from_ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


async def _job_or_none(envoi: Envoi, queue: str, job_id: str) -> JobView | None:
    try:
        return await envoi.queue.inspector.get(queue, job_id)
    except (JobNotFoundError, UnknownQueueError):
        return None


def dead_letter_refs(rows: list[FailedJob]) -> list[DeadLetterRef]:
    return [DeadLetterRef(id=row.id, status=row.status, created_at=row.created_at) for row in rows]


@router.get("/queues/{queue}/jobs", response_model=JobPage, responses=NOT_FOUND)
async def list_jobs(
    queue: QueueName,
    envoi: EnvoiDep,
    state: Annotated[ListedState, Query(description="bullmq's state")] = "waiting",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,9}$", description="`nextCursor` of a page")] = None,
) -> JobPage:
    """Jobs in one state: the next to run first (waiting, delayed, active, prioritized), the latest
    finished first (completed, failed)."""
    page = await envoi.queue.inspector.page(queue, state, limit=limit, offset=int(cursor or 0))
    next_cursor = str(page.next_offset) if page.next_offset is not None else None
    return JobPage(items=[job_item(view) for view in page.items], next_cursor=next_cursor)


@router.get("/queues/{queue}/jobs/{jobId}", response_model=JobDetail, responses=NOT_FOUND)
async def get_job(queue: QueueName, job_id: JobId, envoi: EnvoiDep) -> JobDetail:
    view = await envoi.queue.inspector.get(queue, job_id)
    rows = await envoi.dead_letters.for_jobs([(queue, job_id)])
    return JobDetail(
        **job_item(view).model_dump(),
        options=view.options,
        stacktrace=[mask_text(line) for line in view.stacktrace],
        return_value=mask_payload(view.return_value),
        dead_letters=dead_letter_refs(rows),
    )


@router.post("/queues/{queue}/jobs/{jobId}/promote", response_model=JobItem, responses=CONFLICT)
async def promote_job(queue: QueueName, job_id: JobId, envoi: EnvoiDep) -> JobItem:
    """A delayed job becomes due now (a worker takes it at once); 409 when it is not delayed."""
    return job_item(await envoi.queue.inspector.promote(queue, job_id))


@router.delete("/queues/{queue}/jobs/{jobId}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT)
async def cancel_job(queue: QueueName, job_id: JobId, envoi: EnvoiDep) -> Response:
    """Cancel (remove) a job that has not started: waiting, delayed or prioritized. 409 for a job that
    runs (bullmq does not remove a locked job) or has finished (use clean, or the dead letters)."""
    await envoi.queue.inspector.cancel(queue, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/queues/{queue}/pause", response_model=QueuePaused, responses=NOT_FOUND)
async def pause_queue(queue: QueueName, envoi: EnvoiDep) -> QueuePaused:
    """No worker takes a new job from this queue (running ones finish); jobs keep being accepted."""
    return QueuePaused(name=queue, paused=await envoi.queue.inspector.set_paused(queue, True))


@router.post("/queues/{queue}/resume", response_model=QueuePaused, responses=NOT_FOUND)
async def resume_queue(queue: QueueName, envoi: EnvoiDep) -> QueuePaused:
    return QueuePaused(name=queue, paused=await envoi.queue.inspector.set_paused(queue, False))


@router.post("/queues/{queue}/clean", response_model=Cleaned, responses=NOT_FOUND)
async def clean_queue(
    queue: QueueName,
    envoi: EnvoiDep,
    state: Annotated[Literal["completed", "failed"], Query(description="completed or failed")],
    older_than: Annotated[
        str,
        Query(
            alias="olderThan",
            max_length=20,
            description="finished longer ago than this: milliseconds, or 30s, 15m, 1h, 7d; 0 for all",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Cleaned | Response:
    """Remove finished jobs from bullmq (its `clean`). Failed jobs are removed only once their dead
    letter is recorded: the others are kept and counted in `kept`. Dead letters are not touched."""
    try:
        age_ms = parse_duration_ms(older_than)
    except ValueError as exc:
        return invalid([{"in": "query", "path": "olderThan", "reason": str(exc)}])
    result = await envoi.queue.inspector.clean(queue, state, older_than_ms=age_ms, limit=limit)
    return Cleaned(removed=result.removed, kept=result.kept)


@router.get("/workers", response_model=WorkerList, responses=UNAVAILABLE)
async def workers(envoi: EnvoiDep) -> WorkerList:
    """bullmq's worker list for every queue (Redis CLIENT LIST): where each runs, since when, last seen."""
    views = await envoi.queue.inspector.workers()
    return WorkerList(
        workers=[
            WorkerItem(
                queue=v.queue,
                name=v.name,
                host=v.host,
                pid=v.pid,
                concurrency=v.concurrency,
                address=v.address,
                started_at=v.started_at,
                last_seen_at=v.last_seen_at,
                connections=v.connections,
            )
            for v in views
        ]
    )


@router.get("/throughput", response_model=Throughput, responses=UNAVAILABLE)
async def throughput(envoi: EnvoiDep, minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 180) -> Throughput:
    """Jobs completed and failed (for good) per minute, all queues, as bullmq's workers count them."""
    series = await envoi.queue.inspector.throughput(minutes=minutes)
    return Throughput(
        minutes=[MinuteBucket(start=m.start, completed=m.completed, failed=m.failed) for m in series],
        counting_minutes=envoi.settings.worker_throughput_minutes,
    )


@router.get("/search", response_model=SearchResult, responses=UNAVAILABLE)
async def search(
    envoi: EnvoiDep,
    q: Annotated[
        str, Query(min_length=1, max_length=320, description="A job id, an email or a phone number")
    ],
) -> SearchResult:
    """A job id in every queue, and a recipient's delayed jobs and jobs failed for good (through a hashed
    index, `envoi.queue.recipients`; never a scan of payloads). Each hit carries its dead letters."""
    query = q.strip()
    hits: list[tuple[str, str, str, Any]] = []  # (queue, job id, matched by, indexed ms)
    views: dict[tuple[str, str], JobView] = {}
    for found in await envoi.queue.inspector.find(query):
        hits.append((found.queue, found.id, "jobId", None))
        views[(found.queue, found.id)] = found
    if normalise(query) is not None:
        for entry in await envoi.queue.recipients.find(query, limit=SEARCH_LIMIT):
            if (entry.queue, entry.job_id) not in views:
                hits.append((entry.queue, entry.job_id, "recipient", entry.indexed_ms))
    rows = await envoi.dead_letters.for_jobs([(queue, job_id) for queue, job_id, _, _ in hits])
    items = []
    for queue, job_id, matched_by, indexed_ms in hits:
        view: JobView | None = views.get((queue, job_id)) or await _job_or_none(envoi, queue, job_id)
        items.append(
            SearchHit(
                queue=queue,
                job_id=job_id,
                state=view.state if view else "gone",
                matched_by=matched_by,
                indexed_at=_from_ms(indexed_ms),
                job=job_item(view) if view else None,
                dead_letters=dead_letter_refs(
                    [row for row in rows if row.queue_name == queue and row.job_id == job_id]
                ),
            )
        )
    return SearchResult(items=items)
