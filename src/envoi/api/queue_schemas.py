"""Bodies of the operations console's routes (`envoi.api.routes.queues`): jobs, workers, throughput,
search. camelCase on the wire, as `envoi.api.schemas`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from envoi.api.schemas import Camel


class JobItem(Camel):
    id: str
    queue: str
    name: str
    #: bullmq's state: waiting, delayed, active, prioritized, completed, failed (or paused, unknown).
    state: str
    #: The job's data, recipients masked.
    data: Any
    attempts_made: int
    max_attempts: int
    created_at: datetime | None
    #: Delayed jobs only: when the job becomes due.
    run_at: datetime | None
    processed_at: datetime | None
    finished_at: datetime | None
    #: The last error (addresses masked).
    failed_reason: str | None
    priority: int
    #: Completed jobs that sent nothing: why (`channel off (sms_enabled=false)`, `schedule cancelled`).
    not_sent: str | None = None


class DeadLetterRef(Camel):
    id: str
    status: str
    created_at: datetime


class JobDetail(JobItem):
    #: attempts, backoff, delay, priority, lifo.
    options: dict[str, Any]
    stacktrace: list[str]
    #: What the handler returned (completed jobs), recipients masked.
    return_value: Any
    #: The dead letters recorded for this job id in this queue, newest first.
    dead_letters: list[DeadLetterRef]


class JobPage(Camel):
    items: list[JobItem]
    #: Pass back as `cursor`; a position in bullmq's list, so a job that moves meanwhile may be skipped
    #: or shown twice.
    next_cursor: str | None


class QueuePaused(Camel):
    name: str
    paused: bool


class Cleaned(Camel):
    removed: int
    #: Failed jobs old enough but kept: their dead-letter row is not known yet (see docs/admin.md).
    kept: int


class WorkerItem(Camel):
    queue: str
    #: `envoi/{host}/{pid}/{concurrency}` for envoi's workers; bullmq's connection name otherwise.
    name: str
    host: str | None
    pid: int | None
    concurrency: int | None
    address: str | None
    started_at: datetime
    last_seen_at: datetime
    connections: int


class WorkerList(Camel):
    workers: list[WorkerItem]


class MinuteBucket(Camel):
    start: datetime
    completed: int
    failed: int


class Throughput(Camel):
    #: Oldest first; the last one is the current minute, still counting.
    minutes: list[MinuteBucket]
    #: WORKER_THROUGHPUT_MINUTES of the API's settings (workers count with their own).
    counting_minutes: int


class SearchHit(Camel):
    queue: str
    job_id: str
    #: bullmq's state, or "gone" when bullmq no longer holds the job (completed jobs are removed).
    state: str
    matched_by: Literal["jobId", "recipient"]
    #: When the job was indexed (recipient matches): added if delayed, recorded if it failed for good.
    indexed_at: datetime | None
    job: JobItem | None
    dead_letters: list[DeadLetterRef]


class SearchResult(Camel):
    items: list[SearchHit]
