"""The error tree. Whether a failed job is retried or dead-lettered is decided here, by the class.

    EnvoiError
    ├── ConfigError                    a setting is invalid: start-up stops with its message
    ├── DeferredError                  not a failure: the job comes back at `until` without spending an
    │                                  attempt (another run holds the message's lease)
    ├── QueueUnavailableError          Redis cannot be asked now (disabled, down, breaker open):
    │                                  raised by `QueueService.on_redis`; enqueue then runs inline
    ├── WebhookVerificationError       a received webhook's signature or timestamp does not verify
    │                                  (`envoi.webhooks.verify`, for the caller's receivers)
    ├── DatabaseUnavailableError       the database cannot record what a request needs recorded
    │                                  (an Idempotency-Key, a schedule, a cancellation): HTTP 503
    ├── JobError                       a job can never succeed as given: no retry
    │   ├── UnknownJobError            no handler for the job's name
    │   ├── InvalidJobDataError        the data fails validation (the message names the field)
    │   └── TemplateError              a message template failed to render (names the template and line)
    ├── Retry                          raised by a handler: try again after `after` seconds (spends an
    │                                  attempt; on the last one the job is dead-lettered)
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

from datetime import UTC, datetime, timedelta

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
    "DeferredError",
    "DeliveryError",
    "EnvoiError",
    "InvalidJobDataError",
    "JobError",
    "PermanentDeliveryError",
    "QueueUnavailableError",
    "Retry",
    "TemplateError",
    "TransientDeliveryError",
    "UnknownJobError",
    "WebhookVerificationError",
    "is_permanent",
]


class EnvoiError(Exception):
    """Base class of every error envoi raises on purpose."""


class ConfigError(EnvoiError):
    """A setting is invalid; the message names the variable."""


class DeferredError(EnvoiError):
    """The job cannot go on before `until` (aware UTC), and trying earlier is not a failure: another run
    holds the lease on its message, or a marketing message waits out the recipient's quiet hours. The
    job is postponed, its attempts untouched."""

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
    """The queue is disabled, Redis did not answer within its timeouts, or the circuit breaker is open.
    `enqueue` never lets it out (the job runs inline); Redis-only operations raise it or say "unknown"."""


class WebhookVerificationError(EnvoiError):
    """A webhook's headers are missing, its timestamp is outside the tolerance, or no signature matches.
    The message says which; it never quotes the secret."""


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

    #: How the message starts: a dead letter's error text says the job failed on its data.
    PREFIX = "Invalid data for "

    def __init__(self, job_name: str, fields: dict[str, str]) -> None:
        detail = "; ".join(f"{path}: {reason}" for path, reason in fields.items())
        super().__init__(f"{self.PREFIX}{job_name}: {detail}")
        self.job_name = job_name
        self.fields = fields


class TemplateError(JobError):
    """A message template failed to render. `template` is its name (`en/verification.html`), `line` the
    line in it when known; the message says both, and whether the file came from TEMPLATES_DIR."""

    def __init__(self, template: str, line: int | None, reason: str, *, overridden: bool = False) -> None:
        where = f"{template}{' (TEMPLATES_DIR)' if overridden else ''}"
        at = f", line {line}" if line is not None else ""
        super().__init__(f"Template {where} failed to render{at}: {reason}")
        self.template = template
        self.line = line
        self.overridden = overridden


class Retry(EnvoiError):
    """Raised by a handler to have its job tried again `after` seconds from now (a number or a timedelta),
    instead of after its backoff: "the partner said 429, come back in 30 s".

    It spends an attempt, like any failure: raised on the last one, the job fails for good (a dead letter).
    A job run inline (no Redis) has one attempt, so a Retry there is a dead letter at once.
    """

    def __init__(self, after: float | timedelta, reason: str = "") -> None:
        seconds = after.total_seconds() if isinstance(after, timedelta) else float(after)
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"Retry(after=...) must be a finite delay >= 0, not {after!r}")
        super().__init__(f"Retry in {seconds:g}s" + (f": {reason}" if reason else ""))
        self.after = seconds


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
