"""`NotificationsService`: the product's flows (verification, invitation, appointment confirmation and
reminders, abandon recovery, in-app) turned into notification jobs.

Each message is rendered here, in the recipient's locale and time zone (a template that fails to render
is a `TemplateError` for the caller, before anything of the flow is enqueued), built through its job model
(validated at the call) and enqueued with a deterministic idempotency key (the ledger sends it once)
and a deterministic bullmq job id spelled from it without `:` (a second `add` while the first job waits
is ignored; Node BullMQ refuses `:` in custom ids). Keys hold no address or token in clear: job ids end up in Redis keys and log lines. Whether a job goes through Redis
or runs inline is the queue's business.

Delayed messages (appointment reminders, the WhatsApp follow-up, the abandon-recovery steps) go through
`DelayedMessages`: recorded in SQL first, so that a move or a cancellation holds with Redis down.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from envoi.config import Settings
from envoi.notifications import ics
from envoi.notifications.jobs import (
    Attachment,
    CreateInAppNotificationJob,
    JobMetadata,
    SendEmailJob,
    SendSmsJob,
    SendWhatsAppJob,
)
from envoi.notifications.models import Appointment
from envoi.notifications.reminders import (
    FOLLOWUP_DELAY,
    FOLLOWUP_KIND,
    REMINDER_KINDS,
    REMINDER_OFFSETS,
    appointment_group,
    followup_slot,
    legacy_followup_job_id,
    legacy_reminder_job_ids,
    reminder_slot,
    stamp,
)
from envoi.notifications.rendering import Rendered, Renderer
from envoi.notifications.schedule import ScheduleBook, Slot
from envoi.notifications.scheduler import Cancellation, DelayedMessages, Planned, Replacement
from envoi.queue.base import EnqueueResult
from envoi.queue.jobs import JobPayload
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.service import QueueService
from envoi.recipients import Category, RecipientPolicy


@dataclass(frozen=True, slots=True)
class AbandonRecovery:
    abandon_id: str
    replacement: Replacement


def abandon_group(abandon_id: str) -> str:
    return f"abandon:{abandon_id}"


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def web_url(value: str, name: str) -> str:
    """A link put in an href: http(s) only, or a `javascript:` URL would be one click away."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http:// or https:// URL")
    return value


class NotificationsService:
    def __init__(
        self,
        *,
        settings: Settings,
        queue: QueueService,
        schedule: ScheduleBook,
        policy: RecipientPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        #: Gives marketing emails their unsubscribe link (footer); None: no link.
        self.policy = policy
        self.delayed = DelayedMessages(book=schedule, queue=queue)
        #: Brand (BRAND_NAME, else EMAIL_FROM's display name), TEMPLATES_DIR overrides, default time zone.
        self.renderer = Renderer.from_settings(settings)
        self.brand = self.renderer.brand.name
        self.frontend_url = self.settings.frontend_url.rstrip("/")

    # --- building blocks ---------------------------------------------------------------------------

    def _render(self, template: str, locale: str | None, **context: Any) -> Rendered:
        return self.renderer.render(template, locale or self.settings.default_locale, **context)

    def _render_text(self, template: str, locale: str | None, **context: Any) -> str:
        return self.renderer.render_text(template, locale or self.settings.default_locale, **context)

    @staticmethod
    def _email(
        to: str,
        message: Rendered,
        *,
        key: str,
        template: str,
        attachments: list[Attachment] | None = None,
        metadata: dict[str, Any] | None = None,
        category: Category | None = None,
        timezone: str | None = None,
    ) -> SendEmailJob:
        return SendEmailJob(
            to=to,
            subject=message.subject,
            html=message.html,
            text=message.text,
            attachments=attachments,
            category=category.value if category else None,
            timezone=timezone,
            metadata=_metadata(metadata, template=template, key=key),
        )

    @staticmethod
    def _text(
        model: type[SendSmsJob | SendWhatsAppJob],
        to: str,
        message: str,
        *,
        key: str,
        template: str,
        metadata: dict[str, Any] | None = None,
    ) -> SendSmsJob | SendWhatsAppJob:
        return model(to=to, message=message, metadata=_metadata(metadata, template=template, key=key))

    def _unsubscribe_url(self, email: str, locale: str | None) -> str | None:
        """The footer's link, in the email's language (the page it opens speaks it too)."""
        url = self.policy.unsubscribe_url(email) if self.policy else None
        return f"{url}?lang={locale or self.settings.default_locale}" if url else None

    async def _enqueue(self, job: JobPayload, job_id: str) -> EnqueueResult:
        return await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=job_id)

    # --- account flows -----------------------------------------------------------------------------

    async def send_verification_email(
        self, *, email: str, first_name: str, verification_token: str, locale: str | None = None
    ) -> list[EnqueueResult]:
        message = self._render(
            "verification",
            locale,
            first_name=first_name,
            code=verification_token,
            expires_minutes=self.settings.verification_code_ttl_min,
        )
        hashed = digest(email.lower(), verification_token)
        job = self._email(email, message, key=f"verification:{hashed}", template="verification")
        return [await self._enqueue(job, f"verification-{hashed}")]

    async def send_invitation_email(
        self,
        *,
        email: str,
        organization_name: str,
        inviter_name: str,
        invitation_token: str,
        role: str | None = None,
        locale: str | None = None,
    ) -> list[EnqueueResult]:
        message = self._render(
            "invitation",
            locale,
            organization_name=organization_name,
            inviter_name=inviter_name,
            role=role,
            invite_url=f"{self.frontend_url}/invite/{quote(invitation_token, safe='')}",
            expires_days=self.settings.invitation_ttl_days,
        )
        hashed = digest(email.lower(), invitation_token)
        job = self._email(email, message, key=f"invitation:{hashed}", template="invitation")
        return [await self._enqueue(job, f"invitation-{hashed}")]

    async def schedule_abandon_recovery(
        self,
        *,
        email: str,
        resume_url: str,
        first_name: str | None = None,
        locale: str | None = None,
        abandon_id: str | None = None,
        offer: str | None = None,
        timezone: str | None = None,
    ) -> AbandonRecovery:
        """The recovery emails as delayed jobs, one per step of ABANDON_RECOVERY_SCHEDULE (day 1, 3 and 6
        by default), the `offer` in the last one only. `abandon_id` defaults to a digest of the email
        and `resume_url`. Scheduling the same `abandon_id` again replaces the steps not sent yet.
        Marketing: each step carries the unsubscribe link, and waits out the lead's quiet hours
        (counted in `timezone`)."""
        resume_url = web_url(resume_url, "resume_url")
        unsubscribe_url = self._unsubscribe_url(email, locale)
        abandon_id = abandon_id or digest(email.lower(), resume_url)
        group = abandon_group(abandon_id)
        steps = self.settings.abandon_recovery_steps
        now = datetime.now(UTC)
        planned = []
        for number, delay in enumerate(steps, start=1):
            slot = Slot.new(group, f"step-{number}", now + delay, job_prefix=f"abandon-{abandon_id}-{number}")
            message = self._render(
                "abandon_recovery",
                locale,
                first_name=first_name,
                resume_url=resume_url,
                step=number,
                steps=len(steps),
                offer=offer if number == len(steps) else None,
                unsubscribe_url=unsubscribe_url,
            )
            meta = {"abandonId": abandon_id, "scheduleId": slot.id}
            job = self._email(
                email,
                message,
                key=slot.message_key,
                template="abandon_recovery",
                metadata=meta,
                category=Category.MARKETING,
                timezone=timezone,
            )
            planned.append(Planned(slot, job))
        # Every kind: a shorter schedule than last time must not leave an old last step behind.
        replacement = await self.delayed.replace(group, None, planned)
        return AbandonRecovery(abandon_id, replacement)

    async def cancel_abandon_recovery(self, *, abandon_id: str) -> Cancellation:
        """Cancel the steps not sent yet (the lead came back). `known` is False for an unknown id."""
        return await self.delayed.cancel(abandon_group(abandon_id))

    async def create_inapp_notification(
        self, *, user_id: str, title: str, message: str, metadata: dict[str, Any] | None = None
    ) -> list[EnqueueResult]:
        """A caller that may retry passes `metadata={"idempotencyKey": ...}`: its digest becomes the job
        id too, and the handler makes one row per key."""
        job = CreateInAppNotificationJob(
            user_id=user_id,
            title=title,
            message=message,
            metadata=JobMetadata.model_validate(metadata) if metadata is not None else None,
        )
        key = job.metadata.idempotency_key if job.metadata else None
        job_id = f"inapp-{digest(key)}" if key else None
        return [await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=job_id)]

    # --- appointments ------------------------------------------------------------------------------

    def _appointment_context(self, appointment: Appointment) -> dict[str, Any]:
        return appointment_context(
            appointment, default_timezone=self.settings.default_timezone, frontend_url=self.frontend_url
        )

    def _invitation_attachment(self, appointment: Appointment) -> Attachment:
        context = self._appointment_context(appointment)
        content = ics.build_invitation(
            appointment,
            summary=self._render_text("appointment_ics_summary", appointment.locale, **context),
            description=self._render_text("appointment_ics_description", appointment.locale, **context),
            organizer_fallback=self.settings.email_from,
        )
        return Attachment(
            filename=ics.FILENAME,
            content_type=ics.CONTENT_TYPE,
            content=base64.b64encode(content).decode("ascii"),
        )

    async def send_appointment_confirmation(self, *, appointment: Appointment) -> list[EnqueueResult]:
        """Email with the .ics invitation; SMS and WhatsApp when enabled and the lead has a phone; the
        WhatsApp follow-up as a job delayed by 10 minutes (it outlives a restart, unlike a timer), which
        replaces the one an earlier confirmation of this appointment scheduled. Every message is rendered
        before anything is recorded or enqueued: a broken template changes nothing."""
        now = datetime.now(UTC)
        a, lead, locale = appointment, appointment.lead, appointment.locale
        phone = lead.phone or ""
        context = self._appointment_context(a)
        meta = {"appointmentId": a.appointment_id}
        at = stamp(a.scheduled_at)
        whatsapp = bool(phone and self.settings.whatsapp_enabled)

        def key(channel: str) -> str:
            return f"appointment-confirmation:{a.appointment_id}:{channel}:{at}"

        def job_id(channel: str) -> str:
            return f"appointment-confirmation-{a.appointment_id}-{channel}-{at}"

        jobs: list[tuple[JobPayload, str]] = [
            (
                self._email(
                    lead.email,
                    self._render("appointment_confirmation", locale, **context),
                    key=key("email"),
                    template="appointment_confirmation",
                    attachments=[self._invitation_attachment(a)],
                    metadata=meta,
                ),
                job_id("email"),
            )
        ]
        texts: list[tuple[type[SendSmsJob | SendWhatsAppJob], str]] = []
        if phone and self.settings.sms_enabled:
            texts.append((SendSmsJob, "sms"))
        if whatsapp:
            texts.append((SendWhatsAppJob, "whatsapp"))
        for model, channel in texts:
            message = self._render_text(f"appointment_confirmation_{channel}", locale, **context)
            job = self._text(
                model,
                phone,
                message,
                key=key(channel),
                template=f"appointment_confirmation_{channel}",
                metadata=meta,
            )
            jobs.append((job, job_id(channel)))
        planned = []
        if whatsapp and a.scheduled_at - now > FOLLOWUP_DELAY:
            slot = followup_slot(a.appointment_id, now + FOLLOWUP_DELAY)
            followup_job = self._text(
                SendWhatsAppJob,
                phone,
                self._render_text("appointment_followup_whatsapp", locale, **context),
                key=slot.message_key,
                template="appointment_followup_whatsapp",
                metadata={**meta, "scheduleId": slot.id},
            )
            planned.append(Planned(slot, followup_job))

        followup: Replacement | None = None
        if whatsapp:
            # Recorded first: if the database cannot record it, nothing of the flow has been sent yet.
            followup = await self.delayed.replace(
                appointment_group(a.appointment_id),
                [FOLLOWUP_KIND],
                planned,
                legacy_job_ids=[legacy_followup_job_id(a.appointment_id)],
            )
        results = [await self._enqueue(job, queued_id) for job, queued_id in jobs]
        if followup is not None:
            results.extend(s.result for s in followup.scheduled)
        return results

    async def schedule_appointment_reminders(self, *, appointment: Appointment) -> Replacement:
        """The day-before and hour-before reminders as delayed jobs; calling again (a moved appointment)
        supersedes the ones not sent yet. A reminder whose time has passed is not scheduled."""
        a, lead = appointment, appointment.lead
        context = self._appointment_context(a)
        meta = {"appointmentId": a.appointment_id}
        now = datetime.now(UTC)
        planned: list[Planned] = []
        for kind, offset in REMINDER_OFFSETS.items():
            run_at = a.scheduled_at.astimezone(UTC) - offset
            if run_at <= now:
                continue
            slot = reminder_slot(a.appointment_id, kind, "email", run_at)
            email = self._email(
                lead.email,
                self._render(f"reminder_{kind}", a.locale, **context),
                key=slot.message_key,
                template=f"reminder_{kind}",
                metadata={**meta, "scheduleId": slot.id},
            )
            planned.append(Planned(slot, email))
            if lead.phone and self.settings.sms_enabled:
                slot = reminder_slot(a.appointment_id, kind, "sms", run_at)
                sms = self._text(
                    SendSmsJob,
                    lead.phone,
                    self._render_text(f"reminder_{kind}_sms", a.locale, **context),
                    key=slot.message_key,
                    template=f"reminder_{kind}_sms",
                    metadata={**meta, "scheduleId": slot.id},
                )
                planned.append(Planned(slot, sms))
        return await self.delayed.replace(
            appointment_group(a.appointment_id),
            REMINDER_KINDS,
            planned,
            legacy_job_ids=legacy_reminder_job_ids(a.appointment_id),
        )

    async def cancel_appointment_reminders(self, *, appointment_id: str) -> Cancellation:
        """Cancel the reminders and the WhatsApp follow-up not sent yet (a cancelled appointment should
        not get "looking forward to talking with you" either). Idempotent. A job a worker has already
        taken is reported in `sending`, not stopped."""
        return await self.delayed.cancel(
            appointment_group(appointment_id),
            legacy_job_ids=[
                *legacy_reminder_job_ids(appointment_id),
                legacy_followup_job_id(appointment_id),
            ],
        )


def appointment_context(
    appointment: Appointment, *, default_timezone: str, frontend_url: str
) -> dict[str, Any]:
    """What every appointment template receives (docs/templates.md). The video link, when the appointment
    has one, is in every message and in the .ics alike: one rule, whatever the delay before the start."""
    closer = appointment.closer
    return {
        "timezone": appointment.timezone or default_timezone,
        "first_name": appointment.lead.first_name,
        "closer_name": closer.full_name,
        "closer_email": closer.email,
        "closer_phone": closer.phone,
        "starts_at": appointment.scheduled_at,
        "duration_minutes": appointment.duration_minutes,
        "visio_url": str(appointment.visio_url) if appointment.visio_url else None,
        "confirm_url": f"{frontend_url}/appointments/{appointment.appointment_id}/confirm",
        "reschedule_url": f"{frontend_url}/appointments/{appointment.appointment_id}/reschedule",
    }


def _metadata(extra: dict[str, Any] | None, *, template: str, key: str) -> JobMetadata:
    """A flow's metadata: the caller's ids (camelCase), the template and the idempotency key."""
    return JobMetadata.model_validate({**(extra or {}), "templateKey": template, "idempotencyKey": key})
