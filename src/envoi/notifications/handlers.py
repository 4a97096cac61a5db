"""The four notification job handlers: validate, claim in the ledger, send through the channel, record.

What a handler returns becomes bullmq's `returnvalue` (camelCase, readable by Node):

    {"status": "sent",     "deliveryId": ..., "providerMessageId": ...}
    {"status": "skipped",  "deliveryId": ..., "deliveryStatus": "SENT"}     already sent: not sent again
    {"status": "disabled", "deliveryStatus": "CANCELLED"}                 SMS/WhatsApp off
    {"status": "cancelled", "deliveryStatus": "CANCELLED", "reason": ...}  its schedule was cancelled
                                                       or replaced (reason CANCELLED, SUPERSEDED, UNKNOWN)
    {"status": "suppressed", "deliveryStatus": "SUPPRESSED", "reason": ...}  the recipient opted out
    {"status": "created" | "skipped", "notificationId": ...}                in-app (envoi's inbox row id)

Each one also carries `"metadata": {"notificationId": ...}` when the job's metadata named one: the
caller's own id (the original system's `Notification` row), handed back as given, so that whoever reads
the outcome (a Node `QueueEvents` listener, an outbound event) can update that row.

A delayed message carries `metadata.scheduleId`: `_send` checks its row in `scheduled_messages` before
the ledger's claim (`ScheduleBook.release`, one conditional UPDATE that a concurrent cancel cannot also
win), so a cancelled or moved reminder completes without sending, even if Redis still held its job.

Before anything else, `_send` asks the recipient policy (`envoi.recipients`), at send time: a marketing
message to a recipient who opted out completes as SUPPRESSED (never a dead letter); one due inside the
recipient's quiet hours raises `DeferredError` until the window ends (bullmq's delayed set, attempts
untouched). A marketing email carries RFC 8058's `List-Unsubscribe` headers.

A failed send marks the ledger row FAILED and re-raises the channel's error, whose class decides retry
or dead letter. Log lines carry masked recipients, never bodies. Events go out on `events` (the
webhooks): `message.sent`, `message.failed` when no retry follows, `message.suppressed`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from envoi.channels import Channel, Channels
from envoi.channels.base import (
    ChannelName,
    InAppMessage,
    OutgoingAttachment,
    OutgoingEmail,
    OutgoingText,
    SendReceipt,
)
from envoi.db.models import DeliveryStatus
from envoi.deliveries import TRANSITIONS, Claim, DeliveryLedger, Move, delivery_key
from envoi.errors import DeferredError, DeliveryError, is_permanent
from envoi.events import EventBus, EventType
from envoi.masking import mask_recipient
from envoi.metrics import CHANNEL_DISABLED
from envoi.notifications.digest import InboxDigests
from envoi.notifications.jobs import (
    CreateInAppNotificationJob,
    JobMetadata,
    SendEmailJob,
    SendSmsJob,
    SendWhatsAppJob,
)
from envoi.notifications.schedule import Release, ScheduleBook
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.recipients import Category, RecipientPolicy, category_of

log = logging.getLogger("envoi.notifications")

Result = dict[str, Any]
#: The `status` a handler returns when it completed a job without sending anything, and how a person
#: reads it with the `reason` beside it.
NOT_SENT = {"disabled": "channel off ({})", "cancelled": "schedule {}", "suppressed": "{}"}


def not_sent_reason(returned: object) -> str | None:
    """Why a completed job sent nothing (a channel off, a schedule cancelled, the recipient's
    preferences), read from what its
    handler returned; None when it sent, or the job is not one of envoi's messages."""
    if not isinstance(returned, dict) or returned.get("status") not in NOT_SENT:
        return None
    return NOT_SENT[returned["status"]].format(str(returned.get("reason", "?")).lower())


@dataclass(frozen=True, slots=True)
class Audience:
    """What the recipient policy reads of a message: its category and the time zone of its recipient."""

    category: Category = Category.TRANSACTIONAL
    timezone: str | None = None

    @classmethod
    def of(cls, job: SendEmailJob | SendSmsJob | SendWhatsAppJob) -> Audience:
        flow = job.metadata.flow if job.metadata else None
        return cls(category_of(job.category, flow), job.timezone)


class NotificationHandlers:
    def __init__(
        self,
        channels: Channels,
        ledger: DeliveryLedger,
        schedule: ScheduleBook,
        *,
        events: EventBus,
        policy: RecipientPolicy | None = None,
        digests: InboxDigests | None = None,
    ) -> None:
        self.channels = channels
        self.ledger = ledger
        self.schedule = schedule
        self.events = events
        #: None: every message is sent as it comes (no preferences, no quiet hours).
        self.policy = policy
        #: Arms the user's in-app digest (DIGEST_WINDOW) on each new in-app notification.
        self.digests = digests

    def register(self, registry: HandlerRegistry) -> None:
        """Each handler with its job's model: the registry parses the data once and hands it over."""
        registry.register(SendEmailJob.JOB_NAME, self.send_email, model=SendEmailJob)
        registry.register(SendSmsJob.JOB_NAME, self.send_sms, model=SendSmsJob)
        registry.register(SendWhatsAppJob.JOB_NAME, self.send_whatsapp, model=SendWhatsAppJob)
        registry.register(
            CreateInAppNotificationJob.JOB_NAME,
            self.create_inapp_notification,
            model=CreateInAppNotificationJob,
        )

    async def send_email(self, job: SendEmailJob, context: JobContext) -> Result:
        channel = self.channels.email
        attachments = tuple(
            OutgoingAttachment(a.filename, a.content_type, a.decoded()) for a in job.attachments or ()
        )
        audience = Audience.of(job)
        headers = self.policy.email_headers(job.to, audience.category) if self.policy else ()

        async def send(key: str) -> SendReceipt:
            email = OutgoingEmail(
                to=job.to,
                subject=job.subject,
                html=job.html,
                text=job.text,
                idempotency_key=key,
                attachments=attachments,
                headers=headers,
            )
            return await channel.send(email)

        return await self._send(
            context, ChannelName.EMAIL, channel.provider, job.to, job.metadata, send, audience
        )

    async def send_sms(self, job: SendSmsJob, context: JobContext) -> Result:
        return await self._text(context, ChannelName.SMS, job, self.channels.sms, "SMS_ENABLED")

    async def send_whatsapp(self, job: SendWhatsAppJob, context: JobContext) -> Result:
        return await self._text(
            context, ChannelName.WHATSAPP, job, self.channels.whatsapp, "WHATSAPP_ENABLED"
        )

    async def _text(
        self,
        context: JobContext,
        name: ChannelName,
        job: SendSmsJob | SendWhatsAppJob,
        channel: Channel[OutgoingText] | None,
        switch: str,
    ) -> Result:
        if channel is None:
            return await self._disabled(context, name, job.to, job.metadata, switch)

        async def send(key: str) -> SendReceipt:
            return await channel.send(OutgoingText(to=job.to, body=job.message, idempotency_key=key))

        return await self._send(context, name, channel.provider, job.to, job.metadata, send, Audience.of(job))

    async def create_inapp_notification(self, job: CreateInAppNotificationJob, context: JobContext) -> Result:
        key = _key(context, ChannelName.INAPP, job.user_id, job.metadata)
        metadata = job.metadata.model_dump(mode="json", exclude_none=True) if job.metadata else None
        receipt = await self.channels.inapp.send(
            InAppMessage(
                user_id=job.user_id,
                title=job.title,
                message=job.message,
                idempotency_key=key,
                metadata=metadata,
            )
        )
        if receipt.duplicate:
            log.info("In-app notification %s already created: skipped", receipt.provider_message_id)
        elif self.digests is not None:
            await self.digests.notified(job.user_id)
        result = {
            "status": "skipped" if receipt.duplicate else "created",
            "notificationId": receipt.provider_message_id,
        }
        return _handed_back(result, job.metadata)

    async def _send(
        self,
        context: JobContext,
        name: ChannelName,
        provider: str,
        recipient: str,
        metadata: JobMetadata | None,
        send: Callable[[str], Awaitable[SendReceipt]],
        audience: Audience,
    ) -> Result:
        """`_deliver`, behind the recipient's policy and the scheduled-message check: the calls made
        before the ledger's claim."""
        if self.policy is not None:
            recipients = [recipient, *([metadata.user_id] if metadata and metadata.user_id else [])]
            decision = await self.policy.decide(
                channel=name, category=audience.category, recipients=recipients, timezone=audience.timezone
            )
            if decision.defer_until is not None:
                raise DeferredError(
                    f"{audience.category} {name} waits for the end of the recipient's quiet hours",
                    until=decision.defer_until,
                )
            if decision.suppressed is not None:
                return await self._suppressed(
                    context, name, provider, recipient, metadata, decision.suppressed
                )
        schedule_id = metadata.schedule_id if metadata else None
        if schedule_id is None:
            return await self._deliver(context, name, provider, recipient, metadata, send)
        release = await self.schedule.release(schedule_id)
        if release is not Release.SEND:
            return await self._withheld(context, name, provider, recipient, metadata, release)
        try:
            result = await self._deliver(context, name, provider, recipient, metadata, send)
        except Exception:
            # Not sent (or not known to be): the record goes back to SCHEDULED, so that a cancel made
            # before the retry stops the retry. A cancel seeing SENDING means "in flight" only.
            await self._give_back(schedule_id)
            raise
        if result["status"] == "sent" or result.get("deliveryStatus") in ("SENT", "DELIVERED"):
            try:
                await self.schedule.mark_sent(schedule_id)
            except Exception:
                # The message left and the ledger says so; the row only stays SENDING (a cancel then
                # reports it as possibly sending).
                log.exception("Scheduled message %s was sent but could not be marked SENT", schedule_id)
        return result

    async def _give_back(self, schedule_id: str) -> None:
        try:
            await self.schedule.give_back(schedule_id)
        except Exception:
            # The send's own error matters more; the row stays SENDING (a cancel reports it as sending).
            log.exception("Could not give scheduled message %s back after a failed send", schedule_id)

    async def _withheld(
        self,
        context: JobContext,
        name: ChannelName,
        provider: str,
        recipient: str,
        metadata: JobMetadata | None,
        release: Release,
    ) -> Result:
        """A scheduled message that must not leave: the ledger row reads CANCELLED, with the reason."""
        reason = f"not sent: its schedule is {release.value.lower()}"
        log.info("%s to %s not sent: its schedule is %s", name, mask_recipient(recipient), release.value)
        status = await self._withhold(
            context, name, provider, recipient, metadata, reason, f"SCHEDULE_{release.value}", announce=False
        )
        return {"status": "cancelled", "deliveryStatus": str(status), "reason": release.value}

    async def _suppressed(
        self,
        context: JobContext,
        name: ChannelName,
        provider: str,
        recipient: str,
        metadata: JobMetadata | None,
        reason: str,
    ) -> Result:
        """The recipient said no: the ledger row reads SUPPRESSED with the reason; the job completes."""
        log.info("%s to %s not sent: %s", name, mask_recipient(recipient), reason)
        status = await self._withhold(
            context, name, provider, recipient, metadata, reason, "RECIPIENT_OPTED_OUT", move=Move.SUPPRESS
        )
        result = {"status": "suppressed", "deliveryStatus": str(status), "reason": reason}
        return _handed_back(result, metadata)

    async def _withhold(
        self,
        context: JobContext,
        name: ChannelName,
        provider: str,
        recipient: str,
        metadata: JobMetadata | None,
        reason: str,
        code: str,
        *,
        move: Literal[Move.CANCEL, Move.SUPPRESS] = Move.CANCEL,
        announce: bool = True,
    ) -> DeliveryStatus:
        """The ledger row of a message that will not leave: CANCELLED (SUPPRESSED with `Move.SUPPRESS`)
        with `code` and `reason`, or the final status an earlier run left; when this run withheld it and
        `announce`, a `message.suppressed` event."""
        key = _key(context, name, recipient, metadata)
        status = await self.ledger.cancel(
            key=key,
            channel=name,
            provider=provider,
            recipient=recipient,
            template_key=metadata.flow if metadata else None,
            reason=reason,
            code=code,
            move=move,
        )
        if announce and self.events.listened and status is TRANSITIONS[move].target:
            row = await self.ledger.get(key)
            if row is not None:
                await self.events.emit_message(
                    EventType.MESSAGE_SUPPRESSED, context, name, recipient, row.id, status=status
                )
        return status

    async def _deliver(
        self,
        context: JobContext,
        name: ChannelName,
        provider: str,
        recipient: str,
        metadata: JobMetadata | None,
        send: Callable[[str], Awaitable[SendReceipt]],
    ) -> Result:
        key = _key(context, name, recipient, metadata)
        claim = await self.ledger.claim(
            key=key,
            channel=name,
            provider=provider,
            recipient=recipient,
            template_key=metadata.flow if metadata else None,
        )
        if not claim.acquired:
            log.info(
                "%s to %s not sent again: delivery %s is %s",
                name,
                mask_recipient(recipient),
                claim.delivery_id,
                claim.status,
            )
            skipped = {
                "status": "skipped",
                "deliveryId": claim.delivery_id,
                "deliveryStatus": str(claim.status),
                "providerMessageId": claim.provider_message_id,
            }
            return _handed_back(skipped, metadata)
        try:
            async with self.ledger.renewing(claim):
                receipt = await send(key)
        except DeferredError:
            # Postponed before it left (its provider's next slot is too far): not an attempt, not a failure.
            await self.ledger.release(claim)
            raise
        except Exception as exc:
            code = exc.code if isinstance(exc, DeliveryError) else type(exc).__name__
            await self._record_failure(claim, code, str(exc))
            if is_permanent(exc) or context.is_last_attempt:
                error = {"code": code, "message": str(exc)}
                await self.events.emit_message(
                    EventType.MESSAGE_FAILED, context, name, recipient, claim.delivery_id, error=error
                )
            raise
        interested: bool | None = None
        try:
            # The same statement tells whether any subscriber would act on `message.sent` (an enabled
            # webhook endpoint), read as the row moves to SENT: no statement of its own when none would.
            _, interested = await self.ledger.mark_sent_asking(
                claim,
                provider=receipt.provider,
                provider_message_id=receipt.provider_message_id,
                ask=self.events.interest,
            )
        except Exception:
            # The message left: raising would have the job retried and, once the lease ends, sent again.
            log.exception(
                "%s delivery %s was sent but could not be recorded as SENT", name, claim.delivery_id
            )
        await self.events.emit_message(
            EventType.MESSAGE_SENT,
            context,
            name,
            recipient,
            claim.delivery_id,
            receipt.provider_message_id,
            interested=interested,
        )
        sent = {
            "status": "sent",
            "deliveryId": claim.delivery_id,
            "providerMessageId": receipt.provider_message_id,
        }
        return _handed_back(sent, metadata)

    async def _record_failure(self, claim: Claim, code: str | None, message: str) -> None:
        try:
            await self.ledger.mark_failed(claim, code=code, message=message)
        except Exception:
            # The send's own error matters more; the row's lease lets a retry take it over.
            log.exception("Could not record the failure of delivery %s", claim.delivery_id)

    async def _disabled(
        self,
        context: JobContext,
        name: ChannelName,
        recipient: str,
        metadata: JobMetadata | None,
        switch: str,
    ) -> Result:
        reason = self.channels.off_reasons.get(name, f"{switch}=false")
        # A producer that expected this message to leave should see why it did not.
        CHANNEL_DISABLED.labels(channel=name).inc()
        log.warning("%s to %s not sent: the channel is off (%s)", name, mask_recipient(recipient), reason)
        status = await self._withhold(
            context, name, "twilio", recipient, metadata, reason, "CHANNEL_DISABLED"
        )
        return _handed_back(
            {"status": "disabled", "deliveryStatus": str(status), "reason": reason},
            metadata,
        )


def _key(context: JobContext, name: ChannelName, recipient: str, metadata: JobMetadata | None) -> str:
    return delivery_key(
        channel=name,
        recipient=recipient,
        queue=context.queue,
        job_id=context.job_id,
        created_at_ms=context.created_at_ms,
        idempotency_key=metadata.idempotency_key if metadata else None,
        flow=metadata.flow if metadata else None,
        entity_id=metadata.entity_id if metadata else None,
    )


def _handed_back(result: Result, metadata: JobMetadata | None) -> Result:
    """The outcome, with the caller's `metadata.notificationId` when it gave one."""
    if metadata is not None and metadata.notification_id:
        result["metadata"] = {"notificationId": metadata.notification_id}
    return result
