"""The four notification job handlers: validate, claim in the ledger, send through the channel, record.

What a handler returns becomes bullmq's `returnvalue` (camelCase, readable by Node):

    {"status": "sent",     "deliveryId": ..., "providerMessageId": ...}
    {"status": "skipped",  "deliveryId": ..., "deliveryStatus": "SENT"}     already sent: not sent again
    {"status": "disabled", "deliveryStatus": "CANCELLED"}                 SMS/WHATSAPP_ENABLED=false
    {"status": "created" | "skipped", "notificationId": ...}                in-app

A failed send marks the ledger row FAILED and re-raises the channel's error, whose class decides retry
or dead letter. Log lines carry masked recipients, never bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from envoi.channels import Channel, Channels
from envoi.channels.base import (
    ChannelName,
    InAppMessage,
    OutgoingAttachment,
    OutgoingEmail,
    OutgoingText,
    SendReceipt,
)
from envoi.deliveries import Claim, DeliveryLedger, delivery_key
from envoi.errors import DeliveryError
from envoi.masking import mask_recipient
from envoi.notifications.jobs import (
    CreateInAppNotificationJob,
    JobMetadata,
    SendEmailJob,
    SendSmsJob,
    SendWhatsAppJob,
    parse_job,
)
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.queue.names import JobName

log = logging.getLogger("envoi.notifications")

Result = dict[str, Any]


class NotificationHandlers:
    def __init__(self, channels: Channels, ledger: DeliveryLedger) -> None:
        self.channels = channels
        self.ledger = ledger

    def register(self, registry: HandlerRegistry) -> None:
        registry.register(JobName.SEND_EMAIL, self.send_email)
        registry.register(JobName.SEND_SMS, self.send_sms)
        registry.register(JobName.SEND_WHATSAPP, self.send_whatsapp)
        registry.register(JobName.CREATE_INAPP_NOTIFICATION, self.create_inapp_notification)

    async def send_email(self, context: JobContext) -> Result:
        job = parse_job(context.name, context.data)
        assert isinstance(job, SendEmailJob)
        channel = self.channels.email
        attachments = tuple(
            OutgoingAttachment(a.filename, a.content_type, a.decoded()) for a in job.attachments or ()
        )

        async def send(key: str) -> SendReceipt:
            email = OutgoingEmail(
                to=job.to,
                subject=job.subject,
                html=job.html,
                text=job.text,
                idempotency_key=key,
                attachments=attachments,
            )
            return await channel.send(email)

        return await self._deliver(context, ChannelName.EMAIL, channel.provider, job.to, job.metadata, send)

    async def send_sms(self, context: JobContext) -> Result:
        job = parse_job(context.name, context.data)
        assert isinstance(job, SendSmsJob)
        return await self._text(context, ChannelName.SMS, job, self.channels.sms, "SMS_ENABLED")

    async def send_whatsapp(self, context: JobContext) -> Result:
        job = parse_job(context.name, context.data)
        assert isinstance(job, SendWhatsAppJob)
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

        return await self._deliver(context, name, channel.provider, job.to, job.metadata, send)

    async def create_inapp_notification(self, context: JobContext) -> Result:
        job = parse_job(context.name, context.data)
        assert isinstance(job, CreateInAppNotificationJob)
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
        return {
            "status": "skipped" if receipt.duplicate else "created",
            "notificationId": receipt.provider_message_id,
        }

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
            return {
                "status": "skipped",
                "deliveryId": claim.delivery_id,
                "deliveryStatus": str(claim.status),
                "providerMessageId": claim.provider_message_id,
            }
        try:
            async with self.ledger.renewing(claim):
                receipt = await send(key)
        except DeliveryError as exc:
            await self._record_failure(claim, exc.code, str(exc))
            raise
        except Exception as exc:
            await self._record_failure(claim, type(exc).__name__, str(exc))
            raise
        try:
            await self.ledger.mark_sent(
                claim, provider=receipt.provider, provider_message_id=receipt.provider_message_id
            )
        except Exception:
            # The message left: raising would have the job retried and, once the lease ends, sent again.
            log.exception(
                "%s delivery %s was sent but could not be recorded as SENT", name, claim.delivery_id
            )
        return {
            "status": "sent",
            "deliveryId": claim.delivery_id,
            "providerMessageId": receipt.provider_message_id,
        }

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
        key = _key(context, name, recipient, metadata)
        status = await self.ledger.cancel(
            key=key,
            channel=name,
            provider="twilio",
            recipient=recipient,
            template_key=metadata.flow if metadata else None,
            reason=f"{switch}=false",
        )
        log.info("%s to %s not sent: %s=false", name, mask_recipient(recipient), switch)
        return {"status": "disabled", "deliveryStatus": str(status)}


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
