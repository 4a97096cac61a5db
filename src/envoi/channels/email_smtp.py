"""Email over SMTP, over kept connections (`SmtpPool`: SMTP_POOL_SIZE, SMTP_POOL_IDLE_S,
SMTP_POOL_MAX_MESSAGES), security as SMTP_SECURITY says. aiosmtplib opens each connection; `SmtpSession`
sends over it, pipelined where the server offers it.

`smtp_error()` is the one place SMTP failures become envoi's errors: a reply code decides (4xx retry,
5xx dead letter) whether it came at MAIL, RCPT or DATA; no code (timeouts, refused or dropped
connections) means retry.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiosmtplib

from envoi.channels.base import ChannelName, OutgoingEmail, SendReceipt
from envoi.channels.mime import message_id, needs_smtputf8, render_email, sender_address
from envoi.channels.smtp_pool import SmtpPool
from envoi.channels.smtp_session import SmtpSession
from envoi.config import Settings, SmtpSecurity
from envoi.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.channels.email")


def smtp_error(exc: Exception) -> DeliveryError:
    """Map an SMTP failure (aiosmtplib's exceptions, raised by it or by `SmtpSession`, or a socket's) to
    Transient or Permanent, by reply code."""
    channel = ChannelName.EMAIL
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # SMTPSenderRefused (MAIL), SMTPRecipientRefused (RCPT), SMTPDataError (DATA),
        # SMTPAuthenticationError, SMTPHeloError, SMTPConnectResponseError: all carry `.code`.
        stage = {
            aiosmtplib.SMTPSenderRefused: "Sender refused",
            aiosmtplib.SMTPRecipientRefused: "Recipient refused",
            aiosmtplib.SMTPDataError: "Message refused",
            aiosmtplib.SMTPAuthenticationError: "Authentication refused",
        }.get(type(exc), "SMTP error")
        return _by_code(exc.code, f"{stage}: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # STARTTLS or SMTPUTF8 missing on the server: this message cannot go through as configured.
        return PermanentDeliveryError(f"SMTP server does not support it: {exc}", channel=channel)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientDeliveryError(f"SMTP timeout: {exc}", channel=channel, code="TIMEOUT")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return TransientDeliveryError(f"SMTP connection failed: {exc}", channel=channel, code="CONNECTION")
    if isinstance(exc, ValueError):
        # aiosmtplib refuses an address it cannot put on the wire before sending anything.
        return PermanentDeliveryError(f"Address refused: {exc}", channel=channel, code="ADDRESS")
    return TransientDeliveryError(f"SMTP error: {exc}", channel=channel)


def _by_code(code: int | None, message: str) -> DeliveryError:
    if code is not None and 500 <= code < 600:
        return PermanentDeliveryError(message, channel=ChannelName.EMAIL, code=str(code))
    # 4xx, and odd codes (aiosmtplib uses -1 when the reply could not be read): a retry may succeed.
    return TransientDeliveryError(
        message, channel=ChannelName.EMAIL, code=str(code) if code is not None else None
    )


class SmtpEmailChannel:
    name = ChannelName.EMAIL
    provider = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.sender = settings.email_from
        self.reply_to = settings.email_reply_to
        self.envelope_from = sender_address(settings.email_from)
        self.host, self.port = settings.smtp_host, settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.security = settings.smtp_security
        self.timeout = settings.smtp_timeout_s

        #: Built at the first connection and kept: loading the trust store costs milliseconds of CPU,
        #: which aiosmtplib would otherwise spend again on every connection.
        self._tls: ssl.SSLContext | None = None
        self.pool = SmtpPool(
            self.connect,
            size=settings.smtp_pool_size,
            idle_s=settings.smtp_pool_idle_s,
            max_messages=settings.smtp_pool_max_messages,
        )

    async def connect(self) -> SmtpSession:
        """One connection, greeted, secured and logged in; every command bounded by SMTP_TIMEOUT_S."""
        if self._tls is None and self.security is not SmtpSecurity.NONE:
            # What aiosmtplib builds by default (verified certificate and host name), once.
            self._tls = await asyncio.to_thread(ssl.create_default_context, ssl.Purpose.SERVER_AUTH)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            use_tls=self.security is SmtpSecurity.SSL,
            # False, not None: aiosmtplib's None upgrades whenever the server offers STARTTLS.
            start_tls=self.security is SmtpSecurity.STARTTLS,
            timeout=self.timeout,
            tls_context=self._tls,
        )
        try:
            await client.connect()
            return await SmtpSession.adopt(client)
        except BaseException:
            client.close()
            raise

    async def send(self, message: OutgoingEmail) -> SendReceipt:
        try:
            mail = render_email(message, sender=self.sender, reply_to=self.reply_to)
        except ValueError as exc:  # a header no server should see: the same at every attempt
            raise PermanentDeliveryError(
                f"Message refused: {exc}", channel=self.name, code="MESSAGE"
            ) from exc
        smtputf8 = needs_smtputf8(mail)  # the envelope's two addresses are in From and To

        async def transmit(session: SmtpSession) -> None:
            # SMTPNotSupported for SMTPUTF8 on a server without it. The bodies are 7-bit; 8BITMIME goes
            # along with SMTPUTF8 only, for the headers (RFC 6531).
            options = ["SMTPUTF8"] if smtputf8 else []
            if smtputf8 and session.supports("8bitmime"):
                options.append("BODY=8BITMIME")
            await session.sendmail(self.envelope_from, message.to, mail, options)

        try:
            await self.pool.run(transmit)
        except Exception as exc:
            raise smtp_error(exc) from exc
        log.info("Email sent to %s by SMTP", mask_recipient(message.to))
        return SendReceipt(provider=self.provider, provider_message_id=message_id(message.idempotency_key))

    async def aclose(self) -> None:
        await self.pool.aclose()
