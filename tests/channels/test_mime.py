"""The message as the SMTP and console providers write it (`render_email`): whatever a job holds reads
back the same through the standard library's parser; no header can be broken into two; addresses
outside ASCII go only to a server offering SMTPUTF8."""

from __future__ import annotations

from email import message_from_bytes, message_from_string
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from envoi.channels.base import OutgoingAttachment, OutgoingEmail
from envoi.channels.email_smtp import SmtpEmailChannel
from envoi.channels.mime import message_id, render_email
from envoi.errors import PermanentDeliveryError
from tests.fixtures.smtp import SmtpSink

#: Any character a job could hold (lone surrogates are replaced before a message is built).
ANY = st.characters(exclude_categories=["Cs"])
ONE_LINE = st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"])


def _parsed(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _words(value: str) -> str:
    """A header's value as a reader sees it: runs of white space (folding) count as one space."""
    return " ".join(value.split())


def _lines(text: str) -> str:
    """Line ends as any mail reader gives them back: CRLF, CR and LF all become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _email(**fields: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "to": "jeanne@example.com",
        "subject": "Votre rendez-vous",
        "html": "<p>Bonjour</p>",
        "text": "Bonjour",
        "idempotency_key": "mime-1",
    }
    return OutgoingEmail(**{**values, **fields})


@given(
    subject=st.text(ONE_LINE, min_size=1, max_size=200).filter(str.strip),
    text=st.text(ANY, max_size=3000),
    html=st.text(ANY, max_size=3000),
    name=st.text(ONE_LINE, max_size=60).filter(str.strip),
    filename=st.text(ONE_LINE, min_size=1, max_size=60).filter(str.strip),
    content=st.binary(max_size=2000),
)
@example(
    subject="Rendez-vous à 9h : confirmé ✅ " + "très " * 30,
    text="From the start\n.\r\nune ligne\rpuis " + "x" * 1200,
    html="<p>--=_boundary</p>\n=3D=\n",
    name='Équipe "envoi", Paris',
    filename="invitation été.ics",
    content=b"BEGIN:VCALENDAR\r\n",
)
@example(  # an ASCII line over 998 characters that str.splitlines would have cut at its form feed
    subject="s", text="x" * 600 + "\x0c" + "x" * 600, html="h", name="n", filename="f", content=b""
)
def test_every_part_reads_back_as_it_was_given(
    subject: str, text: str, html: str, name: str, filename: str, content: bytes
) -> None:
    email = _email(
        subject=subject,
        text=text,
        html=html,
        attachments=(OutgoingAttachment(filename, "application/pdf", content),),
    )
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    raw = render_email(email, sender=f'"{quoted}" <no-reply@envoi.test>')
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "a line over SMTP's limit"
    assert raw.isascii()
    parsed = _parsed(raw)
    assert _words(parsed["Subject"]) == _words(subject)
    assert parsed["To"].addresses[0].addr_spec == "jeanne@example.com"
    [sender] = parsed["From"].addresses
    assert sender.addr_spec == "no-reply@envoi.test"
    assert _words(sender.display_name) == _words(name)
    assert parsed["Message-ID"] == message_id("mime-1")
    plain, rich = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and rich is not None
    assert _lines(plain.get_content()) == _lines(text)  # type: ignore[attr-defined]
    assert _lines(rich.get_content()) == _lines(html)  # type: ignore[attr-defined]
    [attachment] = parsed.iter_attachments()
    assert _words(attachment.get_filename() or "") == _words(filename)
    assert attachment.get_content() == content  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Bonjour\r\nBcc: everyone@example.com"},
        {"subject": "Bonjour\nBcc: everyone@example.com"},
        {"headers": (("List-Unsubscribe", "<https://x.test/u>\r\nBcc: everyone@example.com"),)},
        {"headers": (("Bcc: everyone@example.com\r\nX-Hidden", "1"),)},
        {"headers": (("X Space", "1"),)},
        {"attachments": (OutgoingAttachment("a.pdf\r\nBcc: everyone@example.com", "application/pdf", b""),)},
        {"attachments": (OutgoingAttachment("a.pdf", "application/pdf\r\nBcc: everyone@example.com", b""),)},
    ],
)
def test_a_line_break_in_any_header_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        render_email(_email(**fields), sender="envoi <no-reply@envoi.test>")


async def test_a_header_injection_is_a_permanent_failure_and_nothing_is_sent(
    smtp_sink: SmtpSink, make_delivery_settings: Any
) -> None:
    smtp = SmtpEmailChannel(make_delivery_settings())
    with pytest.raises(PermanentDeliveryError, match="line breaks"):
        await smtp.send(_email(subject="Bonjour\r\nBcc: everyone@example.com"))
    await smtp.send(_email(idempotency_key="mime-2"))  # the channel goes on with the next message
    await smtp.aclose()
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["jeanne@example.com"]]


async def test_an_internationalised_address_goes_by_smtputf8(
    smtp_sink: SmtpSink, make_delivery_settings: Any
) -> None:
    smtp = SmtpEmailChannel(make_delivery_settings())
    await smtp.send(_email(to="zoé@exämple.fr", subject="Café ☕"))
    await smtp.aclose()
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["zoé@exämple.fr"]
    # The standard library's bytes parser leaves raw UTF-8 headers undecoded; a mail reader decodes.
    parsed = message_from_string(received.raw.decode(), policy=default)
    assert parsed["To"].addresses[0].addr_spec == "zoé@exämple.fr"
    assert parsed["Subject"] == "Café ☕"


async def test_an_internationalised_address_to_a_server_without_smtputf8_fails_for_good(
    ascii_smtp_sink: SmtpSink, make_delivery_settings: Any
) -> None:
    smtp = SmtpEmailChannel(make_delivery_settings(smtp_port=ascii_smtp_sink.port))
    with pytest.raises(PermanentDeliveryError, match="SMTPUTF8"):
        await smtp.send(_email(to="zoé@exämple.fr"))
    await smtp.aclose()
    assert ascii_smtp_sink.messages == []
