"""What `FailedJobService` answers with: a page, counts, a summary of new dead letters, retry outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from envoi.db.models import FailedJob
from envoi.queue.base import EnqueueResult

#: `queued`: in Redis, a worker will run it; `delivered`: ran inline (no queue) and succeeded;
#: `failed_again`: ran inline and failed again, which left a new dead letter.
RetryResult = Literal["queued", "delivered", "failed_again"]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[FailedJob]
    #: Pass back as `cursor` for the next (older) page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DeadLetterStats:
    total: int
    by_queue: dict[str, int] = field(default_factory=dict)
    by_job_name: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    """The dead letters recorded after a given id (`FailedJobService.summary_since`), counted."""

    total: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)
    by_job_name: dict[str, int] = field(default_factory=dict)
    #: The newest id counted ("" when none was): pass it back to `summary_since` next time.
    last_id: str = ""


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What `FailedJobService.retry` did with one dead letter."""

    #: The row retried (now RETRIED, `retried_job_id` set).
    row: FailedJob
    #: The queue's answer: `mode` "queued" (in Redis under `job_id`) or "sync" (ran inline, `succeeded`).
    enqueued: EnqueueResult
    #: After an inline run that failed: the dead letter it left (None if none could be found, e.g. the
    #: database refused the insert; the failure was then logged).
    new_dead_letter: FailedJob | None = None

    @property
    def result(self) -> RetryResult:
        if self.enqueued.mode == "queued":
            return "queued"
        return "delivered" if self.enqueued.succeeded else "failed_again"

    @property
    def failed_again(self) -> bool:
        return self.result == "failed_again"


@dataclass(slots=True)
class BulkRetry:
    """What `FailedJobService.retry_many` did: how many rows were queued, ran inline and succeeded, or
    ran inline and failed again (the first `FAILURES_KEPT` of those kept, to be shown)."""

    FAILURES_KEPT = 20

    queued: int = 0
    delivered: int = 0
    failed_again: int = 0
    failures: list[RetryOutcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Rows retried (claimed, and queued or run), failed again or not."""
        return self.queued + self.delivered + self.failed_again

    def add(self, outcome: RetryOutcome) -> None:
        if outcome.result == "queued":
            self.queued += 1
        elif outcome.result == "delivered":
            self.delivered += 1
        else:
            self.failed_again += 1
            if len(self.failures) < self.FAILURES_KEPT:
                self.failures.append(outcome)
