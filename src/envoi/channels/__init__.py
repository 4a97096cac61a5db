"""Channels: one class per way a message leaves (SMTP or console email, Twilio SMS and WhatsApp, in-app).

`Channels.from_settings()` builds them once per `Envoi`; `aclose()` releases the shared HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class Channels:
    email: Channel[OutgoingEmail]
    #: None when SMS_ENABLED=false: the SMS job then completes without sending (ledger row CANCELLED).
    #: Twilio, or the console outbox with SMS_PROVIDER=console.
    sms: Channel[OutgoingText] | None
    #: None when WHATSAPP_ENABLED=false, likewise; WHATSAPP_PROVIDER picks Twilio or the console.
    whatsapp: Channel[OutgoingText] | None
    inapp: Channel[InAppMessage]
    twilio: TwilioMessages | None = None

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> Channels:
        email: Channel[OutgoingEmail] = (
            ConsoleEmailChannel(settings)
            if settings.email_provider is EmailProvider.CONSOLE
            else SmtpEmailChannel(settings)
        )
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
        return cls(email=email, sms=sms, whatsapp=whatsapp, inapp=InAppChannel(db), twilio=twilio)

    async def aclose(self) -> None:
        for channel in (self.email, self.sms, self.whatsapp, self.inapp):
            if channel is not None:
                await channel.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()
