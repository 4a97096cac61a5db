"""What a handler sees (`JobContext`), the registry that maps job names to handlers and their models, the
`@job` decorator that declares an application's own jobs, and the record of a final failure handed to
whoever keeps dead letters.

A job's data is parsed once, by the registry: a handler registered with a pydantic model receives the
parsed model, and `QueueService.enqueue()` validates the data of a known job at the call, so a typo is an
`InvalidJobDataError` for the caller instead of a dead letter in the worker.
"""

from __future__ import annotations

import inspect
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from envoi.errors import InvalidJobDataError, UnknownJobError
from envoi.queue.names import NOTIFICATIONS_QUEUE, QUEUE_NAMES, JobName

log = logging.getLogger("envoi.jobs")

Mode = Literal["queued", "sync"]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
#: A job name as it goes in a URL (`POST /v1/jobs/{jobName}`) and a bullmq key.
JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"


@dataclass(frozen=True, slots=True)
class JobContext:
    queue: str
    name: str
    #: The data as it came off the wire (the handler gets it parsed, when its job has a model).
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
        """No retry follows this run if it fails (a failure now is final)."""
        return self.attempt >= self.max_attempts


#: `await handler(payload, context)`: the payload is the parsed model, or the data dict for a job
#: registered without a model.
Handler = Callable[[Any, JobContext], Awaitable[Any]]


class JobPayload(Protocol):
    """A job model that knows its name: `queue.enqueue_job(queue, SendEmailJob(...))`."""

    JOB_NAME: ClassVar[str]

    def wire(self) -> dict[str, Any]: ...


def wire_form(model: BaseModel) -> dict[str, Any]:
    """A model as producers put it on the wire: JSON types, camelCase aliases, no nulls."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_model(model: type[M], job_name: str, data: Any) -> M:
    """`model` validated from `data`; `InvalidJobDataError` naming each bad field by its wire path."""
    if not isinstance(data, dict):
        raise InvalidJobDataError(job_name, {"data": "must be an object"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidJobDataError(job_name, validation_fields(exc)) from None


def validation_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "data"
        # "Value error, must be base64" -> "must be base64": the prefix says nothing to a reader.
        fields.setdefault(path, error["msg"].removeprefix("Value error, "))
    return fields


def validate_items(job_name: str, count: int, validate: Callable[[int], T]) -> list[T]:
    """`validate(index)` for each of `count` items; one `InvalidJobDataError` naming every bad field of
    every bad item by its index (`items.3.to`; `items.3` for an item that is not an object), since a
    batch is refused whole, before any of it is added."""
    valid: list[T] = []
    fields: dict[str, str] = {}
    for index in range(count):
        try:
            valid.append(validate(index))
        except InvalidJobDataError as exc:
            for path, reason in exc.fields.items():
                fields[f"items.{index}.{path}" if path else f"items.{index}"] = reason
    if fields:
        raise InvalidJobDataError(job_name, fields)
    return valid


def require_object(job_name: str, data: Any) -> dict[str, Any]:
    """`data` when it is an object; else `InvalidJobDataError` for the item as a whole (path "")."""
    if not isinstance(data, dict):
        raise InvalidJobDataError(job_name, {"": "must be an object"})
    return data


def _positional_capacity(handler: Callable[..., Any]) -> int | None:
    """How many positional arguments `handler` takes (None: any number, or no signature to read)."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional for p in parameters)


def _two_arguments(name: str, handler: Callable[..., Awaitable[Any]]) -> Handler:
    """`handler` as envoi calls it, `(payload, ctx)`. A handler taking one argument was written for the
    form envoi had before handlers got parsed models, `async def handler(ctx)` (the peer benchmark in
    ../shared/bench/peers still uses it): it keeps running, given the context (`ctx.data` is the wire
    dict), with a DeprecationWarning when it is registered, rather than failing every job it gets."""
    if _positional_capacity(handler) != 1:
        return handler
    warnings.warn(
        f"the handler of {name!r} takes one argument (ctx), the form envoi had before December; "
        "handlers now take (payload, ctx)",
        DeprecationWarning,
        stacklevel=3,
    )

    async def with_context(_payload: Any, context: JobContext) -> Any:
        return await handler(context)

    return with_context


@dataclass(frozen=True, slots=True)
class Registration:
    handler: Handler
    model: type[BaseModel] | None
    #: Where the HTTP API (`POST /v1/jobs/{jobName}`) enqueues the job.
    queue: str = NOTIFICATIONS_QUEUE


class HandlerRegistry:
    """Job name -> handler and model. An unknown name raises `UnknownJobError` (fails without retries)."""

    def __init__(self) -> None:
        self._entries: dict[str, Registration] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        model: type[BaseModel] | None = None,
        queue: str = NOTIFICATIONS_QUEUE,
    ) -> None:
        if name in self._entries:
            raise ValueError(f"a handler for {name!r} is already registered")
        self._entries[name] = Registration(_two_arguments(name, handler), model, queue)

    def handler(self, name: str, *, model: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            self.register(name, fn, model=model)
            return fn

        return decorate

    def model(self, name: str) -> type[BaseModel] | None:
        entry = self._entries.get(name)
        return entry.model if entry else None

    def get(self, name: str) -> Registration | None:
        return self._entries.get(name)

    def validate(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """The wire form of `data` for a job with a model (raising `InvalidJobDataError`); other data as
        given: a name this process has no handler for may be served by another worker."""
        model = self.model(name)
        return data if model is None else wire_form(parse_model(model, name, data))

    async def run(self, context: JobContext) -> Any:
        entry = self._entries.get(context.name)
        if entry is None:
            raise UnknownJobError(context.name)
        payload: Any = context.data
        if entry.model is not None:
            payload = parse_model(entry.model, context.name, context.data)
        return await entry.handler(payload, context)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """One job declared with `@job`: what `Envoi` registers on its registry."""

    name: str
    handler: Handler
    model: type[BaseModel] | None
    queue: str

    @property
    def origin(self) -> str:
        return f"{getattr(self.handler, '__module__', '?')}.{getattr(self.handler, '__qualname__', '?')}"


#: Every job declared with `@job` in the modules imported so far (ENVOI_JOBS, `--jobs`), by name. An
#: `Envoi` built afterwards registers them beside envoi's own.
DECLARED_JOBS: dict[str, JobDefinition] = {}

H = TypeVar("H", bound=Handler)


def job(
    name: str, *, model: type[BaseModel] | None = None, queue: str = NOTIFICATIONS_QUEUE
) -> Callable[[H], H]:
    """Declare an application's job: `@job("GENERATE_INVOICE", model=InvoiceData)` over
    `async def handler(data: InvoiceData, ctx: JobContext)`. With a model, the data is validated at
    `enqueue()` and by `POST /v1/jobs/{name}`, and the handler receives it parsed; without one it receives
    the data dict. The handler is returned unchanged. A name envoi uses, a name declared twice, a name that
    cannot go in a URL or an unknown queue is a `ValueError` when the module is imported.
    """
    if not re.match(JOB_NAME_PATTERN, name):
        raise ValueError(f"job name {name!r} must match {JOB_NAME_PATTERN} (letters, digits, _ . : -)")
    if name in {own.value for own in JobName}:
        raise ValueError(f"job name {name!r} is one of envoi's own jobs")
    if queue not in QUEUE_NAMES:
        raise ValueError(
            f"unknown queue {queue!r} for job {name!r}; expected one of {', '.join(QUEUE_NAMES)}"
        )

    def declare(handler: H) -> H:
        definition = JobDefinition(name, handler, model, queue)
        known = DECLARED_JOBS.get(name)
        # The same function declared again is a reload of its module, not a clash.
        if known is not None and known.origin != definition.origin:
            raise ValueError(f"job {name!r} is declared twice: by {known.origin} and {definition.origin}")
        DECLARED_JOBS[name] = definition
        return handler

    return declare


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
