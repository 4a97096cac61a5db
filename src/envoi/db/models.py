"""The tables envoi owns. The Alembic chain in `migrations/` creates exactly these (a test checks drift)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
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
    type: Mapped[str] = mapped_column(String(50), nullable=False, default="INAPP")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=NotificationStatus.SENT)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    # `metadata` is reserved on declarative classes: the attribute is `meta`, the column `metadata`.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
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
