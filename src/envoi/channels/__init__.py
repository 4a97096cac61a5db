"""Channels: one class per way a message leaves (SMTP, Resend, SendGrid or console email, Twilio SMS and
WhatsApp, in-app).

`Channels.from_settings()` builds them once per `Envoi`; `aclose()` releases their HTTP clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import TypeVar

from envoi.channels.base import (
    Channel,
    ChannelName,
    InAppMessage,
    OutgoingAttachment,
    OutgoingEmail,
    OutgoingText,
    SendReceipt,
)
from envoi.channels.email_console import ConsoleEmailChannel
from envoi.channels.email_resend import ResendEmailChannel
from envoi.channels.email_sendgrid import SendGridEmailChannel
from envoi.channels.email_smtp import SmtpEmailChannel
from envoi.channels.inapp import InAppChannel
from envoi.channels.policy import (
    FailoverChannel,
    ProviderReport,
    ProviderState,
    ThrottledChannel,
    buckets_for,
    provider_report,
)
from envoi.channels.text_console import ConsoleTextChannel
from envoi.channels.traced import TracedChannel
from envoi.channels.twilio import TwilioMessages, TwilioSmsChannel, TwilioWhatsAppChannel
from envoi.config import EmailProvider, Settings, TextProvider
from envoi.db.session import Database
from envoi.queue.rate_limits import RateLimiter

__all__ = [
    "Channel",
    "ChannelName",
    "Channels",
    "InAppMessage",
    "OutgoingAttachment",
    "OutgoingEmail",
    "OutgoingText",
    "ProviderReport",
    "ProviderState",
    "SendReceipt",
    "provider_report",
]


M = TypeVar("M")

_EMAIL_CHANNELS: dict[EmailProvider, Callable[[Settings], Channel[OutgoingEmail]]] = {
    EmailProvider.SMTP: SmtpEmailChannel,
    EmailProvider.RESEND: ResendEmailChannel,
    EmailProvider.SENDGRID: SendGridEmailChannel,
    EmailProvider.CONSOLE: ConsoleEmailChannel,
}


@dataclass
class Channels:
    email: Channel[OutgoingEmail]
    #: None when SMS is off (SMS_ENABLED=false, or its provider not configured): the SMS job then
    #: completes without sending (ledger row CANCELLED with `Settings.channel_off_reason()`). Twilio, or
    #: the console outbox with SMS_PROVIDER=console.
    sms: Channel[OutgoingText] | None
    #: None when WhatsApp is off, likewise; WHATSAPP_PROVIDER picks Twilio or the console.
    whatsapp: Channel[OutgoingText] | None
    inapp: Channel[InAppMessage]
    twilio: TwilioMessages | None = None
    #: Why each channel that is off is off (`SMS_ENABLED=false`, `not configured: … not set`).
    off_reasons: dict[ChannelName, str] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, *, limiter: RateLimiter | None = None
    ) -> Channels:
        """Each provider channel wrapped in its rate limit (when `limiter` is given: RATE_LIMITS and
        Retry-After pauses shared through Redis), email behind a `FailoverChannel` (EMAIL_PROVIDERS)."""

        def policy(provider: Channel[M], sender: str | None) -> Channel[M]:
            # Traced inside the rate limit: a span is one call to the provider, not the wait for a slot.
            channel: Channel[M] = TracedChannel(provider)
            if limiter is None:
                return channel
            return ThrottledChannel(
                channel,
                limiter=limiter,
                buckets=buckets_for(channel.provider, sender, settings.rate_limits),
                max_wait_s=settings.rate_limit_max_wait_s,
            )

        from_address = parseaddr(settings.email_from)[1] or None
        providers = settings.email_providers or [settings.email_provider or EmailProvider.SMTP]
        email: Channel[OutgoingEmail] = FailoverChannel(
            [policy(_EMAIL_CHANNELS[p](settings), from_address) for p in providers],
            threshold=settings.provider_breaker_threshold,
            cooldown_s=settings.provider_breaker_cooldown_s,
        )
        twilio = TwilioMessages(settings) if settings.twilio_sms or settings.twilio_whatsapp else None
        sms: Channel[OutgoingText] | None = None
        whatsapp: Channel[OutgoingText] | None = None
        # The settings' validator guarantees the sender numbers of the enabled Twilio channels.
        if twilio is not None and settings.twilio_sms and settings.twilio_phone_number:
            sender = settings.twilio_phone_number
            sms = FailoverChannel(
                [policy(TwilioSmsChannel(twilio, sender=sender), sender)],
                threshold=settings.provider_breaker_threshold,
                cooldown_s=settings.provider_breaker_cooldown_s,
            )
        elif settings.sms_enabled and settings.sms_provider is TextProvider.CONSOLE:
            sms = TracedChannel(ConsoleTextChannel(settings, name=ChannelName.SMS))
        if twilio is not None and settings.twilio_whatsapp and settings.twilio_whatsapp_number:
            sender = settings.twilio_whatsapp_number
            whatsapp = policy(TwilioWhatsAppChannel(twilio, sender=sender), sender)
        elif settings.whatsapp_enabled and settings.whatsapp_provider is TextProvider.CONSOLE:
            whatsapp = TracedChannel(ConsoleTextChannel(settings, name=ChannelName.WHATSAPP))
        off_reasons = {
            name: reason
            for name in (ChannelName.SMS, ChannelName.WHATSAPP)
            if (reason := settings.channel_off_reason(name)) is not None
        }
        return cls(
            email=email,
            sms=sms,
            whatsapp=whatsapp,
            inapp=TracedChannel(InAppChannel(db)),
            twilio=twilio,
            off_reasons=off_reasons,
        )

    def provider_states(self) -> list[ProviderState]:
        """Each provider's circuit, as this process sees it (circuits are per process)."""
        return [
            state
            for channel in (self.email, self.sms)
            if isinstance(channel, FailoverChannel)
            for state in channel.states()
        ]

    async def aclose(self) -> None:
        for channel in (self.email, self.sms, self.whatsapp, self.inapp):
            if channel is not None:
                await channel.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()
