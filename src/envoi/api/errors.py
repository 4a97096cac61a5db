"""Error answers: every 422 names the field's path and the reason, in one shape.

{"detail": "Invalid request", "errors": [{"in": "body", "path": "lead.email", "reason": "..."}]}

A database that cannot record what a request needs recorded (an Idempotency-Key, a schedule, a
cancellation) is a 503 with `Retry-After`: nothing was done, the request can be sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from envoi.errors import DatabaseUnavailableError, InvalidJobDataError, UnknownJobError


def _path(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def invalid(errors: Iterable[dict[str, str]]) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": "Invalid request", "errors": list(errors)})


def from_pydantic(exc: ValidationError, *, where: str = "body") -> JSONResponse:
    return invalid(
        {"in": where, "path": _path(error["loc"]), "reason": error["msg"]} for error in exc.errors()
    )


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        where = str(loc.pop(0)) if loc and loc[0] in ("body", "path", "query", "header", "cookie") else "body"
        errors.append({"in": where, "path": _path(loc), "reason": str(error.get("msg", "invalid"))})
    return invalid(errors)


async def _invalid_job_data(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidJobDataError)
    return invalid({"in": "body", "path": path, "reason": reason} for path, reason in exc.fields.items())


async def _unknown_job(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownJobError)
    return invalid([{"in": "path", "path": "jobName", "reason": f"unknown job name {exc.job_name!r}"}])


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


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(InvalidJobDataError, _invalid_job_data)
    app.add_exception_handler(UnknownJobError, _unknown_job)
    app.add_exception_handler(ValidationError, _pydantic)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
