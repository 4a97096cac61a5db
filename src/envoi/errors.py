"""The error tree. Whether a failed job is retried or dead-lettered is decided here, by the class.

    EnvoiError
    ├── ConfigError                    a setting is invalid: start-up stops with its message
    ├── QueueUnavailableError          Redis cannot be asked now (disabled, down, breaker open):
    │                                  raised by `QueueService.on_redis`; enqueue then runs inline
    ├── DatabaseUnavailableError       the database cannot record what a request needs recorded
    │                                  (an Idempotency-Key, a schedule, a cancellation): HTTP 503
    ├── JobError                       a job can never succeed as given: no retry
    │   ├── UnknownJobError            no handler for the job's name
    │   └── InvalidJobDataError        the data fails validation (the message names the field)
    └── DeliveryError                  a channel failed to deliver
        ├── TransientDeliveryError     timeouts, refused connections, SMTP 4xx, HTTP 429/5xx: retry,
        │                              after `retry_after` seconds when the provider said so
        └── PermanentDeliveryError     SMTP 5xx, HTTP 4xx (bad recipient, bad credentials): no retry

Any other exception raised by a handler is treated as transient: a bug fixed by a deploy should not
have burned the job's attempts on the first try.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
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


class QueueUnavailableError(EnvoiError):
    """The queue is disabled, Redis did not answer within its timeouts, or the circuit breaker is open.
    `enqueue` never lets it out (the job runs inline); Redis-only operations raise it or say "unknown"."""


class DatabaseUnavailableError(EnvoiError):
    """The database did not answer: what the request asked for was not done, and can be asked again.
    Raised where a promise rests on a SQL record (Idempotency-Key, scheduled messages); the API answers
    503."""


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
