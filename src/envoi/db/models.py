"""The tables envoi owns. The Alembic chain in `migrations/` creates exactly these (a test checks drift)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from envoi.db.types import UTCDateTime, new_id, utcnow


class Base(DeclarativeBase):
    pass


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class FailedJobStatus(StrEnum):
    FAILED = "FAILED"
    RETRIED = "RETRIED"
    RESOLVED = "RESOLVED"


class FailedJob(Timestamps, Base):
    """A job that failed for the last time: the dead-letter queue."""

    __tablename__ = "failed_jobs"
    __table_args__ = (
        Index("ix_failed_jobs_queue_name", "queue_name"),
        Index("ix_failed_jobs_job_name", "job_name"),
        Index("ix_failed_jobs_created_at", "created_at"),
        # Filtered pages, newest first (ids are ULIDs): migration 20260118000000.
        Index("ix_failed_jobs_queue_name_id", "queue_name", "id"),
        Index("ix_failed_jobs_job_name_id", "job_name", "id"),
        Index("ix_failed_jobs_status_id", "status", "id"),
        # One row per final failure: the worker's listener and the reconciler may both see it.
        UniqueConstraint("queue_name", "job_id", "finished_on", name="uq_failed_jobs_failure"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    queue_name: Mapped[str] = mapped_column(String(100), nullable=False)
    job_name: Mapped[str] = mapped_column(String(100), nullable=False)
    #: bullmq's job id; null for a job that failed inline (fallback mode).
    job_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    job_data: Mapped[Any] = mapped_column(JSON, nullable=False)
    #: attempts, backoff, delay, priority, the original job id.
    job_options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    error_message: Mapped[str] = mapped_column(Text, nullable=False)
    #: The last attempts' stack traces, oldest first.
    stacktrace: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    attempts_made: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=FailedJobStatus.FAILED)
    retried_job_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: bullmq's `finishedOn` of the final failure (ms since epoch): identifies the failure.
    finished_on: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class NotificationStatus(StrEnum):
    SENT = "SENT"
    READ = "READ"


class NotificationType(StrEnum):
    """The original system's `NotificationType` value for in-app rows, so that its readers match them."""

    IN_APP = "IN_APP"


class Notification(Timestamps, Base):
    """An in-app notification in a user's inbox."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id", "user_id"),
        Index("ix_notifications_user_id_created_at", "user_id", "created_at"),
        Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(50), nullable=False, default=NotificationType.IN_APP)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=NotificationStatus.SENT)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    # `metadata` is reserved on declarative classes: the attribute is `meta`, the column `metadata`.
    # none_as_null: no metadata is SQL NULL (`IS NULL` finds it), not the JSON text `null`, which
    # SQLAlchemy's JSON type writes for None by default (migration 20261201000500 fixes older rows).
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON(none_as_null=True), nullable=True)
    #: Idempotency: the same CREATE_INAPP_NOTIFICATION job run twice makes one row.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeliveryStatus(StrEnum):
    """A ledger row's status; which moves are allowed is `envoi.deliveries.TRANSITIONS`."""

    PENDING = "PENDING"
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    #: The provider accepted the message, then reported it lost (Twilio "undelivered"/"failed"): final.
    UNDELIVERED = "UNDELIVERED"
    #: Failed before the provider accepted it: sendable again.
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    #: Not sent because of the recipient's preferences (an opt-out, a one-click unsubscribe): final.
    SUPPRESSED = "SUPPRESSED"


class MessageDelivery(Timestamps, Base):
    """The delivery ledger: one row per message that should leave exactly once."""

    __tablename__ = "message_deliveries"
    __table_args__ = (
        Index("ix_message_deliveries_provider_message_id", "provider_message_id"),
        Index("ix_message_deliveries_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    provider: Mapped[str] = mapped_column(String(50), nullable=False)
    #: Stored whole (the provider needs it); masked in every log line.
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    template_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=DeliveryStatus.PENDING)
    provider_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: While SENDING: until when the claim holds; past it another worker may take the row over.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookEndpoint(Timestamps, Base):
    """Where envoi POSTs its events (`envoi.webhooks`). The secret is stored because envoi signs with it;
    the API shows it once, at creation or rotation, and never again."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    #: The event types it subscribes to (`envoi.events.EventType`).
    events: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: `whsec_` + base64 of 32 random bytes (Standard Webhooks).
    secret: Mapped[str] = mapped_column(String(200), nullable=False)
    #: After a rotation, the old secret also signs until this time (zero-downtime rotation).
    previous_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The first failed attempt since the last success; null while it succeeds.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookEvent(Base):
    """An event published to the endpoints: kept so that one can be replayed, and so that a provider's
    status callback can repeat the job name, id and metadata of the `message.sent` it follows."""

    __tablename__ = "webhook_events"

    #: The `webhook-id` header: `evt_{delivery or dead letter id}_{what}`, or `evt_{ULID}`.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    #: The JSON body sent: `{"type", "timestamp", "data"}`.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class WebhookAttempt(Base):
    """One HTTP attempt to deliver one event to one endpoint."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        # An endpoint's latest attempts, newest first (ids are ULIDs).
        Index("ix_webhook_attempts_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_attempts_event_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(String(26), nullable=False)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    #: Null when no answer came (timeout, refused connection, address not allowed).
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class AdminSession(Base):
    """A signed-in admin page: the cookie holds a random value, this row its SHA-256 (a copy of the table
    opens no session). Logout sets `revoked_at`; a session whose `token_fingerprint` is not the current
    ENVOI_ADMIN_TOKEN's is void, so changing the token signs every page out."""

    __tablename__ = "admin_sessions"
    __table_args__ = (Index("ix_admin_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AdminLoginAttempt(Base):
    """One sign-in attempt on the admin page, kept for ADMIN_LOGIN_WINDOW_S: the throttle counts them
    here, so that every API process sees the same count."""

    __tablename__ = "admin_login_attempts"
    __table_args__ = (
        Index("ix_admin_login_attempts_client_attempted_at", "client", "attempted_at"),
        Index("ix_admin_login_attempts_attempted_at", "attempted_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    #: The client's address (the proxy's X-Forwarded-For when the peer is in FORWARDED_ALLOW_IPS).
    client: Mapped[str] = mapped_column(String(64), nullable=False)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class IdempotencyKey(Base):
    """An HTTP `Idempotency-Key` and the job its first request made, until `expires_at`
    (`envoi.notifications.idempotency`). The key itself is not stored: its SHA-256 is enough to match."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    #: What the key was given for (the job name): one key may name one job of each kind.
    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ScheduleStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    #: The handler took it (one conditional UPDATE): a cancel that comes later is too late.
    SENDING = "SENDING"
    SENT = "SENT"
    CANCELLED = "CANCELLED"
    #: Replaced by a later scheduling of the same group and kind (a moved appointment).
    SUPERSEDED = "SUPERSEDED"


class ScheduledMessage(Timestamps, Base):
    """A delayed message (a reminder, the WhatsApp follow-up, an abandon-recovery step), recorded before
    its job is added, so that a cancellation or a move holds even when Redis could not be told
    (`envoi.notifications.schedule`)."""

    __tablename__ = "scheduled_messages"
    __table_args__ = (Index("ix_scheduled_messages_group_key_status", "group_key", "status"),)

    #: The job's `metadata.scheduleId`: the handler checks this row before it sends.
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    #: What a cancellation names: `appointment:{id}`, `abandon:{id}`.
    group_key: Mapped[str] = mapped_column(String(255), nullable=False)
    #: Which message of the group (`reminder-day`, `followup-whatsapp`, `step-2`): a new scheduling
    #: supersedes the SCHEDULED rows of the kinds it schedules.
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    job_id: Mapped[str] = mapped_column(String(255), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=ScheduleStatus.SCHEDULED)


class RecipientPreference(Base):
    """One recipient's choice for one channel and category (`envoi.recipients`, its only reader and
    writer). No row: sent. `recipient` is an email address (lowercased), an E.164 number or a user id."""

    __tablename__ = "recipient_preferences"

    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    #: Who set it last: `api`, `cli`, `unsubscribe` (the one-click link).
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class RecipientSettings(Base):
    """A recipient's own quiet hours, time zone and digest address (`envoi.recipients`)."""

    __tablename__ = "recipient_settings"

    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    #: `HH:MM-HH:MM`; "" for none whatever QUIET_HOURS says; NULL: QUIET_HOURS applies.
    quiet_hours: Mapped[str | None] = mapped_column(String(11), nullable=True)
    #: Used when the job names no `timezone`; NULL: DEFAULT_TIMEZONE.
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: For a user id: where the in-app digest goes (DIGEST_WINDOW); NULL: no digest.
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class InboxDigest(Base):
    """One user's pending in-app digest (`envoi.notifications.digest`, its only reader and writer):
    armed by the first unread notification, sent DIGEST_WINDOW later with every notification still
    unread since `covered_until`."""

    __tablename__ = "inbox_digests"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: When the armed digest is due; NULL while none is armed.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Notifications created up to this instant were in an earlier digest (or too early for one).
    covered_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
