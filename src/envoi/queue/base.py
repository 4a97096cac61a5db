"""The queue interface. Two backends implement it: Redis (bullmq) and inline (the synchronous fallback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

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


class QueueBackend(Protocol):
    async def enqueue(
        self, queue: str, job_name: str, data: dict[str, Any], *, job_id: str | None, options: dict[str, Any]
    ) -> EnqueueResult: ...

    async def remove(self, queue: str, job_id: str) -> bool: ...

    async def close(self) -> None: ...
