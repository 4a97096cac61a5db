"""`NotificationsService`: the product's flows (verification, invitation, appointment confirmation and
reminders, abandon recovery, in-app) turned into notification jobs.

Each message is rendered here, in the recipient's locale and time zone (a template that fails to render
is a `TemplateError` for the caller, before anything of the flow is enqueued), built through its job model
(validated at the call) and enqueued with a deterministic idempotency key (the ledger sends it once)
which is also its bullmq job id (a second `add` while the first job waits is ignored). Keys hold no
address or token in clear: job ids end up in Redis keys and log lines. Whether a job goes through Redis
or runs inline is the queue's business.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime, timedelta
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
    REMINDER_OFFSETS,
    ScheduledReminder,
    followup_job_id,
    reminder_job_id,
    reminder_job_ids,
    stamp,
)
from envoi.notifications.rendering import Rendered, Renderer
from envoi.queue.base import EnqueueResult
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.service import QueueService


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def web_url(value: str, name: str) -> str:
    """A link put in an href: http(s) only, or a `javascript:` URL would be one click away."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http:// or https:// URL")
    return value


class NotificationsService:
    def __init__(self, *, settings: Settings, queue: QueueService) -> None:
        self.settings = settings
        self.queue = queue
        #: Brand (BRAND_NAME, else EMAIL_FROM's display name), TEMPLATES_DIR overrides, default time zone.
        self.renderer = Renderer.from_settings(settings)
        self.brand = self.renderer.brand.name
        self.frontend_url = self.settings.frontend_url.rstrip("/")

    # --- building blocks ---------------------------------------------------------------------------

    def _render(self, template: str, locale: str | None, **context: Any) -> Rendered:
        return self.renderer.render(template, locale or self.settings.default_locale, **context)

    def _render_text(self, template: str, locale: str | None, **context: Any) -> str:
        return self.renderer.render_text(template, locale or self.settings.default_locale, **context)

    async def _send_email(
        self,
        to: str,
        message: Rendered,
        *,
        key: str,
        template: str,
        job_id: str | None = None,
        delay: timedelta | None = None,
        attachments: list[Attachment] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> EnqueueResult:
        job = SendEmailJob(
            to=to,
            subject=message.subject,
            html=message.html,
            text=message.text,
            attachments=attachments,
            metadata=_metadata(metadata, template=template, key=key),
        )
        return await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=job_id or key, delay=delay)

    async def _send_text(
        self,
        model: type[SendSmsJob | SendWhatsAppJob],
        to: str,
        message: str,
        *,
        key: str,
        template: str,
        job_id: str | None = None,
        delay: timedelta | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> EnqueueResult:
        job = model(to=to, message=message, metadata=_metadata(metadata, template=template, key=key))
        return await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=job_id or key, delay=delay)

    async def _remove(self, job_ids: list[str]) -> None:
        # bullmq answers "removed" for an id that never existed too: the result says nothing, unused.
        await asyncio.gather(*(self.queue.remove(NOTIFICATIONS_QUEUE, job_id) for job_id in job_ids))

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
        key = f"verification:{digest(email.lower(), verification_token)}"
        return [await self._send_email(email, message, key=key, template="verification")]

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
        key = f"invitation:{digest(email.lower(), invitation_token)}"
        return [await self._send_email(email, message, key=key, template="invitation")]

    async def send_abandon_recovery(
        self, *, email: str, first_name: str | None = None, resume_url: str, locale: str | None = None
    ) -> list[EnqueueResult]:
        """One recovery email per (email, resume_url): the ledger skips a second one. A caller that
        wants a sequence gives each step its own URL (a step or token parameter)."""
        resume_url = web_url(resume_url, "resume_url")
        message = self._render("abandon_recovery", locale, first_name=first_name, resume_url=resume_url)
        key = f"abandon-recovery:{digest(email.lower(), resume_url)}"
        return [await self._send_email(email, message, key=key, template="abandon_recovery")]

    async def create_inapp_notification(
        self, *, user_id: str, title: str, message: str, metadata: dict[str, Any] | None = None
    ) -> list[EnqueueResult]:
        """A caller that may retry passes `metadata={"idempotencyKey": ...}`: it becomes the job id
        too, and the handler makes one row per key."""
        job = CreateInAppNotificationJob(
            user_id=user_id,
            title=title,
            message=message,
            metadata=JobMetadata.model_validate(metadata) if metadata is not None else None,
        )
        key = job.metadata.idempotency_key if job.metadata else None
        return [await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=key)]

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
        WhatsApp follow-up as a job delayed by 10 minutes (it outlives a restart, unlike a timer). Every
        message is rendered before the first is enqueued: a broken template enqueues nothing."""
        now = datetime.now(UTC)
        a, lead, locale = appointment, appointment.lead, appointment.locale
        phone = lead.phone or ""
        context = self._appointment_context(a)
        meta = {"appointmentId": a.appointment_id}
        at = stamp(a.scheduled_at)

        def key(channel: str) -> str:
            return f"appointment-confirmation:{a.appointment_id}:{channel}:{at}"

        email = self._render("appointment_confirmation", locale, **context)
        attachment = self._invitation_attachment(a)
        channels: list[tuple[type[SendSmsJob | SendWhatsAppJob], str]] = []
        if phone and self.settings.sms_enabled:
            channels.append((SendSmsJob, "sms"))
        if phone and self.settings.whatsapp_enabled:
            channels.append((SendWhatsAppJob, "whatsapp"))
        texts = [
            (model, channel, self._render_text(f"appointment_confirmation_{channel}", locale, **context))
            for model, channel in channels
        ]
        followup = None
        if phone and self.settings.whatsapp_enabled and a.scheduled_at - now > FOLLOWUP_DELAY:
            followup = self._render_text("appointment_followup_whatsapp", locale, **context)

        results = [
            await self._send_email(
                lead.email,
                email,
                key=key("email"),
                template="appointment_confirmation",
                attachments=[attachment],
                metadata=meta,
            )
        ]
        for model, channel, message in texts:
            results.append(
                await self._send_text(
                    model,
                    phone,
                    message,
                    key=key(channel),
                    template=f"appointment_confirmation_{channel}",
                    metadata=meta,
                )
            )
        if phone and self.settings.whatsapp_enabled:
            # Re-confirming a moved appointment replaces a follow-up that still waits.
            await self._remove([followup_job_id(a.appointment_id)])
            if followup is not None:
                results.append(
                    await self._send_text(
                        SendWhatsAppJob,
                        phone,
                        followup,
                        key=f"followup:{a.appointment_id}:whatsapp:{at}",
                        template="appointment_followup_whatsapp",
                        job_id=followup_job_id(a.appointment_id),
                        delay=FOLLOWUP_DELAY,
                        metadata=meta,
                    )
                )
        return results

    async def schedule_appointment_reminders(self, *, appointment: Appointment) -> list[ScheduledReminder]:
        """The day-before and hour-before reminders as delayed jobs; calling again (a moved appointment)
        replaces them. A reminder whose time has passed is not scheduled. Returns what was scheduled."""
        a, lead = appointment, appointment.lead
        await self._remove(reminder_job_ids(a.appointment_id))
        context = self._appointment_context(a)
        meta = {"appointmentId": a.appointment_id}
        at = stamp(a.scheduled_at)
        now = datetime.now(UTC)
        scheduled: list[ScheduledReminder] = []
        for kind, offset in REMINDER_OFFSETS.items():
            run_at = a.scheduled_at.astimezone(UTC) - offset
            if run_at <= now:
                continue
            delay = run_at - now
            job_id = reminder_job_id(a.appointment_id, kind)
            result = await self._send_email(
                lead.email,
                self._render(f"reminder_{kind}", a.locale, **context),
                key=f"reminder:{a.appointment_id}:{kind}:email:{at}",
                template=f"reminder_{kind}",
                job_id=job_id,
                delay=delay,
                metadata=meta,
            )
            scheduled.append(ScheduledReminder(kind, "email", job_id, run_at, result))
            if lead.phone and self.settings.sms_enabled:
                job_id = reminder_job_id(a.appointment_id, kind, "sms")
                result = await self._send_text(
                    SendSmsJob,
                    lead.phone,
                    self._render_text(f"reminder_{kind}_sms", a.locale, **context),
                    key=f"reminder:{a.appointment_id}:{kind}:sms:{at}",
                    template=f"reminder_{kind}_sms",
                    job_id=job_id,
                    delay=delay,
                    metadata=meta,
                )
                scheduled.append(ScheduledReminder(kind, "sms", job_id, run_at, result))
        return scheduled

    async def cancel_appointment_reminders(self, *, appointment_id: str) -> None:
        """Remove the reminders and the WhatsApp follow-up still waiting (a cancelled appointment should
        not get "looking forward to talking with you" either). Idempotent; a job already running is
        left to finish (bullmq does not remove a locked job)."""
        await self._remove([*reminder_job_ids(appointment_id), followup_job_id(appointment_id)])


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
