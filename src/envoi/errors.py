"""The error tree. Whether a failed job is retried or dead-lettered is decided here, by the class.

    EnvoiError
    ├── ConfigError                    a setting is invalid: start-up stops with its message
    ├── DeferredError                  not a failure: the job comes back at `until` without spending an
    │                                  attempt (another run holds the message's lease)
    ├── QueueUnavailableError          Redis could not be reached (the queue falls back to inline)
    ├── JobError                       a job can never succeed as given: no retry
    │   ├── UnknownJobError            no handler for the job's name
    │   └── InvalidJobDataError        the data fails validation (the message names the field)
    └── DeliveryError                  a channel failed to deliver
        ├── TransientDeliveryError     timeouts, refused connections, SMTP 4xx, HTTP 429/5xx: retry,
        │                              after `retry_after` seconds when the provider said so
        └── PermanentDeliveryError     SMTP 5xx, HTTP 4xx (bad recipient, bad credentials): no retry

Any other exception raised by a handler is treated as transient: a bug fixed by a deploy should not
have burned the job's attempts on the first try.

A `DeferredError` is decided on in one place per backend: the worker moves the job to bullmq's delayed
set until then (`envoi.worker`); the inline backend waits a bounded time, then records a failure
(`envoi.queue.inline`).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "ConfigError",
    "DeferredError",
    "DeliveryError",
    "EnvoiError",
    "InvalidJobDataError",
    "JobError",
    "PermanentDeliveryError",
    "QueueUnavailableError",
    "TransientDeliveryError",
    "UnknownJobError",
    "is_permanent",
]


class EnvoiError(Exception):
    """Base class of every error envoi raises on purpose."""


class ConfigError(EnvoiError):
    """A setting is invalid; the message names the variable."""


class DeferredError(EnvoiError):
    """The job cannot go on before `until` (aware UTC), and trying earlier is not a failure: another run
    holds the lease on its message. The job is postponed, its attempts untouched."""

    def __init__(self, message: str, *, until: datetime) -> None:
        super().__init__(message)
        self.until = until

    @property
    def until_ms(self) -> int:
        """`until` in milliseconds since the epoch, as bullmq counts."""
        return int(self.until.timestamp() * 1000)

    def seconds_left(self) -> float:
        return max(0.0, (self.until - datetime.now(UTC)).total_seconds())


class QueueUnavailableError(EnvoiError):
    """Redis did not answer within the connect timeout, or the circuit breaker is open."""


class JobError(EnvoiError):
    """The job can never succeed as given; it fails without retries."""


class UnknownJobError(JobError):
    def __init__(self, job_name: str) -> None:
        super().__init__(f"Unknown job name {job_name!r}")
        self.job_name = job_name


class InvalidJobDataError(JobError):
    """Job data failed validation. `fields` maps each bad field's dotted path to the reason."""

    def __init__(self, job_name: str, fields: dict[str, str]) -> None:
        detail = "; ".join(f"{path}: {reason}" for path, reason in fields.items())
        super().__init__(f"Invalid data for {job_name}: {detail}")
        self.job_name = job_name
        self.fields = fields


class DeliveryError(EnvoiError):
    """A channel failed. `code` is the provider's code (SMTP reply code, HTTP status, Twilio code)."""

    def __init__(self, message: str, *, channel: str, code: str | None = None) -> None:
        super().__init__(message)
        self.channel = channel
        self.code = code


class TransientDeliveryError(DeliveryError):
    def __init__(
        self, message: str, *, channel: str, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, channel=channel, code=code)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass


def is_permanent(exc: BaseException) -> bool:
    """True when retrying cannot help: the job goes to the dead letters at once."""
    return isinstance(exc, JobError | PermanentDeliveryError)
