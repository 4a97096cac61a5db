"""What a handler sees (`JobContext`), the registry that maps job names to handlers, and the record of
a final failure handed to whoever keeps dead letters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from envoi.errors import UnknownJobError

log = logging.getLogger("envoi.jobs")

Mode = Literal["queued", "sync"]


@dataclass(frozen=True, slots=True)
class JobContext:
    queue: str
    name: str
    data: dict[str, Any]
    #: bullmq's id, or a generated one for a job run inline.
    job_id: str
    #: When the job was created (bullmq's `timestamp`, ms), the same on every retry: with `job_id`, it
    #: tells apart two jobs that got the same id from bullmq's counter before and after Redis lost its data.
    created_at_ms: int
    #: 1 on the first try.
    attempt: int
    max_attempts: int
    mode: Mode

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[JobContext], Awaitable[Any]]


class HandlerRegistry:
    """Job name -> async handler. An unknown name raises `UnknownJobError` (fails without retries)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"a handler for {name!r} is already registered")
        self._handlers[name] = handler

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            self.register(name, fn)
            return fn

        return decorate

    async def run(self, context: JobContext) -> Any:
        handler = self._handlers.get(context.name)
        if handler is None:
            raise UnknownJobError(context.name)
        return await handler(context)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)


@dataclass(frozen=True, slots=True)
class FinalFailure:
    """A job that will not be tried again: what the dead-letter queue stores."""

    queue: str
    job_name: str
    data: Any
    options: dict[str, Any]
    error_message: str
    stacktrace: list[str]
    attempts_made: int
    #: None for a job that failed inline.
    job_id: str | None = None
    #: bullmq's finishedOn (ms); identifies the failure together with queue and job id.
    finished_on: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FailureRecorder(Protocol):
    async def record(self, failure: FinalFailure) -> None: ...


class LoggingFailureRecorder:
    """The recorder of last resort: a final failure is at least logged (never the payload)."""

    async def record(self, failure: FinalFailure) -> None:
        log.error(
            "Job %s on %s failed for good after %d attempt(s): %s",
            failure.job_name,
            failure.queue,
            failure.attempts_made,
            failure.error_message,
        )
