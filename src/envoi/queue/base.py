"""What an enqueue answers, whichever way the job went (Redis or inline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoi.queue.jobs import Mode


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
