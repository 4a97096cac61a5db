"""Building an email (`email.message.EmailMessage`), shared by the SMTP and console providers."""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from envoi.channels.base import OutgoingEmail
from envoi.db.types import utcnow

MESSAGE_ID_DOMAIN = "envoi"


def message_id(idempotency_key: str) -> str:
    """The same key gives the same Message-ID: a resend is recognisable (and deduplicated by some MTAs)."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


def sender_address(email_from: str) -> str:
    """The bare address of `EMAIL_FROM` ("envoi <no-reply@x>" -> "no-reply@x"), for SMTP's MAIL FROM."""
    addresses = getaddresses([email_from])
    return addresses[0][1] if addresses and addresses[0][1] else email_from


def build_email(message: OutgoingEmail, *, sender: str) -> EmailMessage:
    """multipart/alternative (text, then HTML, as clients prefer the last), inside multipart/mixed when
    there are attachments."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = Address(addr_spec=message.to)
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = message_id(message.idempotency_key)
    if message.text is not None:
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
    else:
        mail.set_content(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mail.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return mail
