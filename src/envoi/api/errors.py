"""Error answers: every 422 names the field's path and the reason, in one shape.

{"detail": "Invalid request", "errors": [{"in": "body", "path": "lead.email", "reason": "..."}]}

A path can hold a key the caller sent (a metadata key with a lone surrogate, say): the answer is made
encodable (`json_safe`) so that a refusal never turns into a 500.

A message template that fails to render while a flow is enqueued (a broken TEMPLATES_DIR override) is the
server's fault, not the request's: a 500 that names the template and the line, so that whoever calls
can tell the operator what to fix. Nothing of the flow was enqueued.

A database that cannot record what a request needs recorded (an Idempotency-Key, a schedule, a
cancellation) is a 503 with `Retry-After`: nothing was done, the request can be sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from envoi.errors import (
    DatabaseUnavailableError,
    InvalidJobDataError,
    QueueUnavailableError,
    TemplateError,
    UnknownJobError,
)
from envoi.queue.inspect import JobNotFoundError, JobStateError, UnknownQueueError
from envoi.validation import json_safe

log = logging.getLogger("envoi.api")


def _path(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def _reason(msg: Any) -> str:
    # "Value error, must be base64" -> "must be base64": the prefix says nothing to a reader.
    return str(msg).removeprefix("Value error, ")


def invalid(errors: Iterable[dict[str, str]]) -> JSONResponse:
    content = {"detail": "Invalid request", "errors": list(errors)}
    return JSONResponse(status_code=422, content=json_safe(content))


def from_pydantic(exc: ValidationError, *, where: str = "body") -> JSONResponse:
    return invalid(
        {"in": where, "path": _path(error["loc"]), "reason": _reason(error["msg"])}
        for error in exc.errors(include_input=False)
    )


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        where = str(loc.pop(0)) if loc and loc[0] in ("body", "path", "query", "header", "cookie") else "body"
        errors.append({"in": where, "path": _path(loc), "reason": _reason(error.get("msg", "invalid"))})
    return invalid(errors)


async def _invalid_job_data(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidJobDataError)
    return invalid({"in": "body", "path": path, "reason": reason} for path, reason in exc.fields.items())


async def _unknown_job(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownJobError)
    return invalid([{"in": "path", "path": "jobName", "reason": f"unknown job name {exc.job_name!r}"}])


async def _template(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TemplateError)
    log.error("%s", exc)
    return JSONResponse(
        status_code=500, content={"detail": str(exc), "template": exc.template, "line": exc.line}
    )


#: Seconds a client is told to wait before asking again after a 503.
RETRY_AFTER_S = 5


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DatabaseUnavailableError)
    return JSONResponse(
        status_code=503, content={"detail": str(exc)}, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


async def _pydantic(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return from_pydantic(exc)


def _problem(status: int) -> Any:
    """A handler answering `{"detail": str(exc)}` with `status` (the messages name no secret)."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    return handler


def install(app: FastAPI) -> None:
    # Redis cannot be asked: the admin routes that read or change bullmq's state cannot answer.
    app.add_exception_handler(QueueUnavailableError, _problem(503))
    app.add_exception_handler(UnknownQueueError, _problem(404))
    app.add_exception_handler(JobNotFoundError, _problem(404))
    app.add_exception_handler(JobStateError, _problem(409))
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(InvalidJobDataError, _invalid_job_data)
    app.add_exception_handler(UnknownJobError, _unknown_job)
    app.add_exception_handler(TemplateError, _template)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
    app.add_exception_handler(ValidationError, _pydantic)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
