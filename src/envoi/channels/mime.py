"""What every email provider derives the same way: the Message-ID and reference from the idempotency
key, the sender's parts, and the message the SMTP and console providers send, as bytes.

`render_email` writes the header block itself and leaves the body's MIME tree to the standard
library's compat32 classes. `EmailMessage` did both, parsing each header as it was set and folding it
again through the header parser as it was written: 0.8 ms of CPU per message, a quarter of the worker's
whole cost per email (docs/benchmarks.md, "Email end to end"). Here the same message costs about 0.2 ms.

What is written:
- bodies 7-bit: ASCII text with lines of at most 998 characters as it is, anything else
  quoted-printable, attachments base64; so no message needs the server's 8BITMIME;
- non-ASCII in the subject, a display name or an extra header as RFC 2047 encoded words, an
  attachment's non-ASCII name as an RFC 2231 parameter;
- an address with non-ASCII in it (an internationalised mailbox or domain) as UTF-8: such a message
  needs a server offering SMTPUTF8 (`needs_smtputf8`), as its envelope does;
- no header with a line break: a value holding one is refused (`ValueError`), as is a header name
  that is not printable ASCII without a colon.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import secrets
from email.charset import Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.policy import compat32
from email.utils import format_datetime, getaddresses

from envoi.channels.base import OutgoingAttachment, OutgoingEmail
from envoi.db.types import utcnow

MESSAGE_ID_DOMAIN = "envoi"
#: The header the HTTP providers carry the reference in (Resend documents it; it also keeps Gmail from
#: threading two notifications that share a subject).
REFERENCE_HEADER = "X-Entity-Ref-ID"
#: RFC 5321's limit on a line, CRLF excluded: a longer text line goes quoted-printable.
MAX_LINE = 998

_SMTP = compat32.clone(linesep="\r\n")
_UTF8 = Charset("utf-8")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII, no space, no colon (RFC 5322's ftext)
_LINE_BREAK = re.compile(r"[\r\n]")
#: A display name holding one of these is quoted (RFC 5322's specials), as `email.utils.formataddr` does.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES = re.compile(r'[\\"]')


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


def render_email(message: OutgoingEmail, *, sender: str, reply_to: str | None = None) -> bytes:
    """The whole message, CRLF line ends: multipart/alternative (text, then HTML, as clients prefer the
    last), inside multipart/mixed when there are attachments."""
    head = [("From", _mailbox(sender)), ("To", _mailbox(message.to))]
    if reply_to:
        head.append(("Reply-To", _mailbox(reply_to)))
    head += [
        ("Subject", _unstructured(message.subject)),
        ("Date", format_datetime(utcnow())),
        ("Message-ID", message_id(message.idempotency_key)),
        *((name, _unstructured(value)) for name, value in message.headers),
        ("MIME-Version", "1.0"),
    ]
    lines = "".join(f"{_name(name)}: {_one_line(value)}\r\n" for name, value in head)
    return lines.encode() + _flatten(_body(message))


def needs_smtputf8(rendered: bytes) -> bool:
    """True when an address in the headers is not ASCII: the server must offer SMTPUTF8."""
    return not rendered.isascii()


def _mailbox(value: str) -> str:
    """`Name <address>` (or the bare address), the name quoted or encoded as it needs."""
    name, address = sender_parts(value)
    if not name:
        return address
    if not name.isascii():
        # One encoded word, as `email.utils.formataddr` writes it: split in two, the standard library's
        # own parser would read a space between them.
        name = _UTF8.header_encode(name)
    elif _SPECIALS.search(name):
        name = '"{}"'.format(_ESCAPES.sub(r"\\\g<0>", name))
    return f"{name} <{address}>"


def _unstructured(value: str) -> str:
    """A free-text value (a subject): folded under 78 characters, encoded words where it is not ASCII."""
    _one_line(value)
    return Header(value, None if value.isascii() else "utf-8").encode(linesep="\r\n")


def _name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"Not a header name: {name!r}")
    return name


def _one_line(value: str) -> str:
    # A folded value's own CRLF-space is the only break allowed.
    if _LINE_BREAK.search(value.replace("\r\n ", "")):
        raise ValueError("Header values may not contain line breaks")
    return value


def _body(message: OutgoingEmail) -> Message:
    html = _text_part(message.html, "html")
    body = (
        html if message.text is None else _multipart("alternative", _text_part(message.text, "plain"), html)
    )
    if message.attachments:
        body = _multipart("mixed", body, *map(_attachment, message.attachments))
    return body


def _multipart(subtype: str, *parts: Message) -> Message:
    multipart = Message(_SMTP)
    # Chosen here: the generator would draw one and compile a regular expression to search the
    # parts for it (a third of the time). "=_" occurs in no quoted-printable or base64 line, and a
    # 7-bit part, text from a job, cannot hold a line it has no way to guess.
    multipart["Content-Type"] = f'multipart/{subtype}; boundary="=_{secrets.token_hex(16)}"'
    for part in parts:
        multipart.attach(part)
    return multipart


def _text_part(text: str, subtype: str) -> Message:
    part = Message(_SMTP)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    # Lines as SMTP counts them, ended by CR or LF only (`str.splitlines` also ends one at a form feed).
    if text.isascii() and max(map(len, _LINE_BREAK.split(text))) <= MAX_LINE:
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(text)
    else:
        part["Content-Transfer-Encoding"] = "quoted-printable"
        # binascii's encoder is C; email.quoprimime's does the same four times slower.
        part.set_payload(binascii.b2a_qp(text.encode("utf-8", "replace")).decode("ascii"))
    return part


def _attachment(attachment: OutgoingAttachment) -> Message:
    part = Message(_SMTP)
    content_type = attachment.content_type if "/" in attachment.content_type else "application/octet-stream"
    part["Content-Type"] = _one_line(content_type)
    part["Content-Transfer-Encoding"] = "base64"
    filename = _one_line(attachment.filename)
    part.add_header(
        "Content-Disposition",
        "attachment",
        filename=filename if filename.isascii() else ("utf-8", "", filename),
    )
    part.set_payload(base64.encodebytes(attachment.content).decode("ascii"))
    return part


def _flatten(body: Message) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_SMTP).flatten(body)
    return out.getvalue()
