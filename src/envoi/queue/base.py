"""What an enqueue answers, whichever way the job went (Redis or inline), and a job ready to go."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from envoi.queue.jobs import Mode

T = TypeVar("T")

#: Jobs per bulk add (one MULTI/EXEC): the API's batches (1,000 items at most) go in two round trips;
#: a bigger chunk holds Redis longer in one transaction, which every other client waits behind.
CHUNK_SIZE = 500


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: str
    job_name: str
    queue: str
    mode: Mode
    #: Inline runs only: did the handler succeed? (None when queued: it has not run yet.)
    succeeded: bool | None = None
    #: Inline runs only: the handler's return value.
    result: Any = None


@dataclass(frozen=True, slots=True)
class BulkJob:
    """A job checked by `QueueService` (name, size, id) with its final options: what a backend adds."""

    queue: str
    name: str
    data: dict[str, Any]
    job_id: str | None
    #: bullmq's options, defaults merged (`delay` in ms); without `jobId`, which is `job_id`.
    opts: dict[str, Any]

    def bullmq_opts(self) -> dict[str, Any]:
        return self.opts if self.job_id is None else {**self.opts, "jobId": self.job_id}


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
