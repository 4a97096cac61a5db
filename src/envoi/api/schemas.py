"""Request and response bodies of the HTTP API. JSON is camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from envoi.addresses import EmailAddress
from envoi.events import EventType
from envoi.notifications.jobs import TimeZoneName
from envoi.notifications.service import web_url
from envoi.queue.jobs import Mode
from envoi.validation import CleanInput

Locale = Literal["fr", "en"]
#: Jobs one `POST /v1/jobs/{jobName}/batch` may carry.
MAX_BATCH_ITEMS = 1000
#: An id the caller names a group of scheduled messages by (`abandonId`, as `appointmentId`): it goes
#: into job ids, so no `:` (Node BullMQ refuses it), no spaces.
ENTITY_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
EntityId = Annotated[str, Field(min_length=1, max_length=100, pattern=ENTITY_ID_PATTERN)]


def _web_url(value: str) -> str:
    """The flows service's own rule (http or https, with a host), checked here so a bad URL is a 422."""
    try:
        return web_url(value, "resumeUrl")
    except ValueError:
        raise ValueError("must be an http:// or https:// URL") from None


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Body(Camel, CleanInput):
    """A request body: unknown fields are refused rather than silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- enqueue answers ------------------------------------------------------------------------------


class JobAccepted(Camel):
    job_id: str
    mode: Mode
    #: Channels switched off for this job (`SMS_ENABLED=false`...): accepted, but nothing will be sent.
    warnings: list[str] = Field(default_factory=list)


class JobBatch(Camel):
    """`POST /v1/jobs/{jobName}/batch`: each item is one job's data, validated as the single route
    validates it (a 422 names `items.3.to`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class BatchJob(Camel):
    job_id: str
    #: Per job: in a batch that met a Redis outage, the jobs before it are queued, the others ran.
    mode: Mode


class BatchAccepted(Camel):
    #: One per item, in the order of the items.
    jobs: list[BatchJob]
    warnings: list[str] = Field(default_factory=list)


class FlowJob(Camel):
    job_id: str
    job_name: str


class FlowAccepted(Camel):
    jobs: list[FlowJob]
    mode: Mode
    #: Channels of the flow switched off: their messages were not enqueued.
    warnings: list[str] = Field(default_factory=list)


class AbandonRecoveryAccepted(FlowAccepted):
    #: The id to cancel the sequence with (`DELETE /v1/abandons/{abandonId}/recovery`).
    abandon_id: str


class ScheduledReminder(Camel):
    kind: Literal["day", "hour"]
    #: email always; sms too when SMS is enabled and the lead has a phone.
    channel: Literal["email", "sms"]
    job_id: str
    run_at: datetime


class RemindersScheduled(Camel):
    """200 when every reminder is in the queue and the replaced ones are out of it; 202 otherwise."""

    #: Recorded and in the queue, due at `runAt`.
    reminders: list[ScheduledReminder]
    #: Channels switched off: their reminders were not scheduled.
    warnings: list[str] = Field(default_factory=list)
    #: Recorded but not in the queue (Redis unavailable): in the dead letters with their due time,
    #: scheduled again by a retry (`envoi dlq retry`).
    dead_lettered: list[ScheduledReminder] = []
    #: Job ids of the reminders this replaced: recorded as superseded, they will not be sent.
    superseded: list[str] = []
    #: Job ids of old reminders a worker was sending at that very moment: they may have been sent.
    sending: list[str] = []
    #: False when Redis could not be told to drop the superseded jobs: they stay until their time and
    #: then complete without sending.
    removed_from_queue: bool = True


class CancellationReport(Camel):
    """A cancellation that left something to say (a 204 says: all cancelled, nothing left anywhere)."""

    #: Job ids cancelled now (recorded: they will not be sent).
    cancelled: list[str]
    #: Job ids a worker had already taken when the cancel came: they may have been sent.
    sending: list[str]
    #: False when Redis could not be told to drop the cancelled jobs: they stay until their time and
    #: then complete without sending.
    removed_from_queue: bool


class Count(Camel):
    count: int


# --- flows ----------------------------------------------------------------------------------------


class VerificationEmailRequest(Body):
    email: EmailAddress
    first_name: str = Field(min_length=1, max_length=200)
    verification_token: str = Field(min_length=1, max_length=1000)
    locale: Locale | None = None


class InvitationEmailRequest(Body):
    email: EmailAddress
    organization_name: str = Field(min_length=1, max_length=200)
    inviter_name: str = Field(min_length=1, max_length=200)
    invitation_token: str = Field(min_length=1, max_length=1000)
    role: str | None = Field(None, max_length=100)
    locale: Locale | None = None


class AbandonRecoveryRequest(Body):
    email: EmailAddress
    first_name: str | None = Field(None, max_length=200)
    resume_url: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_web_url)]
    locale: Locale | None = None
    #: Names the sequence (to replace or cancel it); derived from email and resumeUrl when absent.
    abandon_id: EntityId | None = None
    #: Shown in the last email of the sequence only (escaped: text, not HTML).
    offer: str | None = Field(None, min_length=1, max_length=500)
    #: The lead's IANA time zone: quiet hours are counted in it (DEFAULT_TIMEZONE when absent).
    timezone: TimeZoneName | None = None


# --- inbox ----------------------------------------------------------------------------------------


class InAppRequest(Body):
    title: str = Field(min_length=1, max_length=500)
    message: str = Field(min_length=1, max_length=10_000)
    metadata: dict[str, Any] | None = None


class NotificationItem(Camel):
    id: str
    user_id: str
    title: str
    message: str
    metadata: dict[str, Any] | None
    status: str
    read_at: datetime | None
    created_at: datetime


class NotificationPage(Camel):
    items: list[NotificationItem]
    next_cursor: str | None


# --- admin ----------------------------------------------------------------------------------------


class QueueState(Camel):
    name: str
    #: Jobs per bullmq state; null when Redis cannot be asked.
    counts: dict[str, int] | None
    #: Paused (no worker takes a new job); null when Redis cannot be asked.
    paused: bool | None = None


class ProviderStatus(Camel):
    channel: str
    provider: str
    #: The API process's view: circuits are per process (each worker keeps its own).
    circuit: str
    failures_in_a_row: int
    rate_limit: float | None
    #: Shared through Redis (null when it cannot be asked): sends that waited for their rate-limit slot,
    #: slots refused beyond RATE_LIMIT_MAX_WAIT_S, Retry-After pauses.
    throttled: int | None
    refused: int | None
    paused: int | None


class QueuesOverview(Camel):
    queue_enabled: bool
    fallback_active: bool
    queues: list[QueueState]
    providers: list[ProviderStatus] = []


class FailedJobItem(Camel):
    id: str
    queue_name: str
    job_name: str
    job_id: str | None
    job_data: Any
    job_options: dict[str, Any]
    error_message: str
    stacktrace: list[str]
    attempts_made: int
    status: str
    retried_job_id: str | None
    created_at: datetime
    updated_at: datetime
    #: The job failed because its data did not validate: a retry sends the same data.
    failed_on_invalid_data: bool = False
    #: The fields its job's model refuses today (a retry would be refused), or null.
    data_problems: dict[str, str] | None = None


class DeliveryItem(Camel):
    """A row of the delivery ledger, recipient masked."""

    id: str
    channel: str
    provider: str
    recipient: str
    status: str
    template_key: str | None
    error_code: str | None
    #: Why it ended so (addresses masked): `SMS_ENABLED=false`, `not sent: its schedule is CANCELLED`.
    error_message: str | None
    attempts: int
    updated_at: datetime


class DeliveryPage(Camel):
    items: list[DeliveryItem]


class FailedJobPage(Camel):
    items: list[FailedJobItem]
    next_cursor: str | None


class RetryAccepted(Camel):
    job_id: str
    #: "queued": in Redis, a worker will run it (202); "sync": no queue, it ran inline and succeeded (200).
    mode: Mode


class RetryFailedAgain(Camel):
    """A retry that ran inline (no queue) and failed again (502): the failure is a new dead letter."""

    detail: str
    job_id: str
    #: The dead letter the failed run left (null if it could not be recorded; the worker log has it).
    new_failed_job_id: str | None


class HourBucket(Camel):
    start: datetime
    count: int


class FailureHistogram(Camel):
    hours: list[HourBucket]


# --- operations -----------------------------------------------------------------------------------


class Health(Camel):
    status: Literal["ok"]


class Readiness(Camel):
    status: Literal["ready", "not ready"]
    database: str
    redis: str
    fallback_active: bool


class FieldError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    in_: str = Field(alias="in")
    path: str
    reason: str


class ValidationProblem(BaseModel):
    detail: str
    errors: list[FieldError]


class Problem(BaseModel):
    detail: str


# --- webhook endpoints ----------------------------------------------------------------------------


class WebhookEndpointCreate(Body):
    url: str = Field(min_length=1, max_length=2000, description="https:// (http needs WEBHOOK_ALLOW_HTTP)")
    events: list[EventType] = Field(min_length=1, max_length=len(EventType))
    description: str | None = Field(None, max_length=500)


class WebhookEndpointUpdate(Body):
    url: str | None = Field(None, min_length=1, max_length=2000)
    events: list[EventType] | None = Field(None, min_length=1, max_length=len(EventType))
    enabled: bool | None = None
    description: str | None = Field(None, max_length=500, description="An empty string clears it")


class WebhookEndpointSecret(Camel):
    """The only answers that carry the secret: keep it, it is not shown again."""

    id: str
    secret: str


class WebhookEndpointItem(Camel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointList(Camel):
    items: list[WebhookEndpointItem]


class WebhookAttemptItem(Camel):
    id: str
    event_id: str
    event_type: str
    status_code: int | None
    duration_ms: int
    error: str | None
    created_at: datetime


class WebhookAttemptList(Camel):
    items: list[WebhookAttemptItem]


class WebhookEventQueued(Camel):
    event_id: str
    job_ids: list[str]


class TemplateProblem(Problem):
    """500: a message template (a TEMPLATES_DIR override, most often) failed to render; nothing of the
    flow was enqueued."""

    template: str
    line: int | None
