"""`FailedJobFilters`: which dead letters an operation is about (the WHERE clause of every bulk read,
retry and delete), and `parse_status` for a status typed by a person."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import ColumnElement, or_

from envoi.db.models import FailedJob, FailedJobStatus


def parse_status(value: str | FailedJobStatus | None) -> FailedJobStatus | None:
    if value is None or isinstance(value, FailedJobStatus):
        return value
    try:
        return FailedJobStatus(value.upper())
    except ValueError:
        known = ", ".join(s.value for s in FailedJobStatus)
        raise ValueError(f"unknown status {value!r}; expected one of {known}") from None


@dataclass(frozen=True, slots=True)
class FailedJobFilters:
    """Which dead letters an operation is about; every field left None matches everything."""

    queue_name: str | None = None
    job_name: str | None = None
    status: FailedJobStatus | None = None
    #: created_at >= since
    since: datetime | None = None
    #: created_at < until
    until: datetime | None = None
    #: A substring of the error message, or a job id.
    search: str | None = None

    def __post_init__(self) -> None:
        # Accept "failed" or "FAILED" from a CLI or a query string; reject anything else here, once.
        object.__setattr__(self, "status", parse_status(self.status))
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.queue_name is not None:
            where.append(FailedJob.queue_name == self.queue_name)
        if self.job_name is not None:
            where.append(FailedJob.job_name == self.job_name)
        if self.status is not None:
            where.append(FailedJob.status == self.status.value)
        if self.since is not None:
            where.append(FailedJob.created_at >= self.since)
        if self.until is not None:
            where.append(FailedJob.created_at < self.until)
        if self.search:
            pattern = "%" + self.search.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
            where.append(
                or_(FailedJob.error_message.ilike(pattern, escape="\\"), FailedJob.job_id == self.search)
            )
        return where

    def with_status(self, status: FailedJobStatus) -> FailedJobFilters:
        return replace(self, status=status)

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) in (None, "") for name in self.__slots__)
