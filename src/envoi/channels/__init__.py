"""Channels: one class per way a message leaves (SMTP, Resend, SendGrid or console email, Twilio SMS and
WhatsApp, in-app).

`Channels.from_settings()` builds them once per `Envoi`; `aclose()` releases their HTTP clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
from envoi.channels.text_console import ConsoleTextChannel
from envoi.channels.twilio import TwilioMessages, TwilioSmsChannel, TwilioWhatsAppChannel
from envoi.config import EmailProvider, Settings, TextProvider
from envoi.db.session import Database

__all__ = [
    "Channel",
    "ChannelName",
    "Channels",
    "InAppMessage",
    "OutgoingAttachment",
    "OutgoingEmail",
    "OutgoingText",
    "SendReceipt",
]


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
    def from_settings(cls, settings: Settings, db: Database) -> Channels:
        email_class = _EMAIL_CHANNELS[settings.email_provider or EmailProvider.SMTP]
        email: Channel[OutgoingEmail] = email_class(settings)
        twilio = TwilioMessages(settings) if settings.twilio_sms or settings.twilio_whatsapp else None
        sms: Channel[OutgoingText] | None = None
        whatsapp: Channel[OutgoingText] | None = None
        # The settings' validator guarantees the sender numbers of the enabled Twilio channels.
        if twilio is not None and settings.twilio_sms and settings.twilio_phone_number:
            sms = TwilioSmsChannel(twilio, sender=settings.twilio_phone_number)
        elif settings.sms_enabled and settings.sms_provider is TextProvider.CONSOLE:
            sms = ConsoleTextChannel(settings, name=ChannelName.SMS)
        if twilio is not None and settings.twilio_whatsapp and settings.twilio_whatsapp_number:
            whatsapp = TwilioWhatsAppChannel(twilio, sender=settings.twilio_whatsapp_number)
        elif settings.whatsapp_enabled and settings.whatsapp_provider is TextProvider.CONSOLE:
            whatsapp = ConsoleTextChannel(settings, name=ChannelName.WHATSAPP)
        off_reasons = {
            name: reason
            for name in (ChannelName.SMS, ChannelName.WHATSAPP)
            if (reason := settings.channel_off_reason(name)) is not None
        }
        return cls(
            email=email,
            sms=sms,
            whatsapp=whatsapp,
            inapp=InAppChannel(db),
            twilio=twilio,
            off_reasons=off_reasons,
        )

    async def aclose(self) -> None:
        for channel in (self.email, self.sms, self.whatsapp, self.inapp):
            if channel is not None:
                await channel.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()
