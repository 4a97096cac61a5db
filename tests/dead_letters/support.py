"""Jobs for the dead-letter tests, and small helpers to read the table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import func, select

from envoi.db.models import FailedJob
from envoi.dead_letters.reconciler import Reconciler
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.errors import InvalidJobDataError, PermanentDeliveryError
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.runtime import Envoi
from tests.helpers import eventually

T = TypeVar("T")


@dataclass
class Jobs:
    """A registry of test jobs and what they saw: `FLAKY` fails until `broken` is cleared."""

    registry: HandlerRegistry = field(default_factory=HandlerRegistry)
    calls: list[JobContext] = field(default_factory=list)
    broken: bool = True
    fail_first: int = 2

    def __post_init__(self) -> None:
        registry = self.registry

        @registry.handler("ALWAYS_FAIL")
        async def always_fail(_data: object, context: JobContext) -> None:
            self.calls.append(context)
            raise RuntimeError(f"boom {context.attempt}")

        @registry.handler("PERMANENT")
        async def permanent(_data: object, context: JobContext) -> None:
            self.calls.append(context)
            raise PermanentDeliveryError("550 no such user", channel="email", code="550")

        @registry.handler("INVALID")
        async def invalid(_data: object, context: JobContext) -> None:
            self.calls.append(context)
            raise InvalidJobDataError("INVALID", {"to": "not an email"})

        @registry.handler("THIRD_TIME")
        async def third_time(_data: object, context: JobContext) -> str:
            self.calls.append(context)
            if context.attempt <= self.fail_first:
                raise RuntimeError(f"not yet ({context.attempt})")
            return "ok"

        @registry.handler("SWITCH")
        async def switch(_data: object, context: JobContext) -> str:
            self.calls.append(context)
            if self.broken:
                raise RuntimeError("provider down")
            return "delivered"

    def named(self, name: str) -> list[JobContext]:
        return [c for c in self.calls if c.name == name]


async def until(probe: Callable[[], Awaitable[T]], *, timeout: float = 10.0, message: str = "condition") -> T:
    """`eventually` for an async probe, typed (mypy cannot solve `T | Awaitable[T]` for a coroutine)."""
    return cast(T, await eventually(cast(Any, probe), timeout=timeout, message=message))


async def rows(envoi: Envoi, **where: Any) -> list[FailedJob]:
    statement = select(FailedJob).filter_by(**where).order_by(FailedJob.id)
    async with envoi.db.session() as session:
        return list((await session.scalars(statement)).all())


async def row_count(envoi: Envoi) -> int:
    async with envoi.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(FailedJob))).scalar_one())


def failure(index: int, *, queue: str = "notifications", job_name: str = "SEND_EMAIL", **extra: Any) -> Any:
    """A bullmq-like final failure; `index` makes its identity unique."""
    from envoi.queue.jobs import FinalFailure

    values: dict[str, Any] = {
        "queue": queue,
        "job_name": job_name,
        "data": {"to": f"user{index}@example.com", "phone": "+33612345678"},
        "options": {"attempts": 5, "backoff": {"type": "exponential", "delay": 20}, "jobId": str(index)},
        "error_message": f"error {index}",
        "stacktrace": [f"Traceback {index}"],
        "attempts_made": 5,
        "job_id": str(index),
        "finished_on": 1_700_000_000_000 + index,
    }
    values.update(extra)
    return FinalFailure(**values)


def reconciler(envoi: Envoi, queues: tuple[str, ...] = ("notifications",)) -> Reconciler:
    """A reconciler as a worker of `queues` builds it (`Envoi.worker_companions`)."""
    return Reconciler(
        db=envoi.db,
        failed_set=envoi.queue.failed_set,
        recorder=SqlFailureRecorder(envoi.db, events=envoi.events),
        queues=queues,
        interval_s=envoi.settings.dlq_reconcile_interval_s,
    )
