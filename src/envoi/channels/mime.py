"""What every email provider derives the same way: the Message-ID and reference from the idempotency
key, the sender's parts, and the MIME message the SMTP and console providers send."""

from __future__ import annotations

import hashlib
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from envoi.channels.base import OutgoingEmail
from envoi.db.types import utcnow

MESSAGE_ID_DOMAIN = "envoi"
#: The header the HTTP providers carry the reference in (Resend documents it; it also keeps Gmail from
#: threading two notifications that share a subject).
REFERENCE_HEADER = "X-Entity-Ref-ID"


class _HeaderClasses(HeaderRegistry):
    """The standard library's registry builds a new class each time it is asked for a header's class,
    about 28 times per message: two thirds of the time `build_email` took (docs/benchmarks.md, "Email
    end to end"). The classes are the same each time, so they are kept, up to a bound: header names
    can come from a job's data."""

    MAX_CLASSES = 256

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = super().__getitem__(name)
            if len(self._classes) < self.MAX_CLASSES:
                self._classes[key] = cls
        return cls


#: `email.policy.default` with the registry above.
POLICY = policy.default.clone(header_factory=_HeaderClasses())


def reference(idempotency_key: str) -> str:
    """32 hex characters naming one message: the same key, the same reference, retries included."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def message_id(idempotency_key: str) -> str:
    """The same key gives the same Message-ID: a resend is recognisable (and deduplicated by some MTAs)."""
    return f"<{reference(idempotency_key)}@{MESSAGE_ID_DOMAIN}>"


def sender_parts(email_from: str) -> tuple[str, str]:
    """(display name, address) of `EMAIL_FROM`: "envoi <no-reply@x>" -> ("envoi", "no-reply@x")."""
    addresses = getaddresses([email_from])
    if addresses and addresses[0][1]:
        return addresses[0][0], addresses[0][1]
    return "", email_from


def sender_address(email_from: str) -> str:
    """The bare address of `EMAIL_FROM` ("envoi <no-reply@x>" -> "no-reply@x"), for SMTP's MAIL FROM."""
    return sender_parts(email_from)[1]


def build_email(message: OutgoingEmail, *, sender: str, reply_to: str | None = None) -> EmailMessage:
    """multipart/alternative (text, then HTML, as clients prefer the last), inside multipart/mixed when
    there are attachments."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = sender
    mail["To"] = Address(addr_spec=message.to)
    if reply_to:
        mail["Reply-To"] = reply_to
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = message_id(message.idempotency_key)
    for name, value in message.headers:
        mail[name] = value
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
