"""SMTP pipelining (RFC 2920) in `SmtpSession`: MAIL, RCPT and DATA in one round trip where the server
offers it, one command at a time where it does not, refusals read in order whatever arrives, bodies
dot-stuffed. Against aiosmtpd (`smtp_sink`, offering PIPELINING or not) and, where the test must see
the bytes on the wire, a small SMTP server on a real socket that records what it reads."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envoi.channels.base import OutgoingEmail
from envoi.channels.email_smtp import SmtpEmailChannel
from envoi.channels.smtp_session import SmtpSession
from envoi.config import Settings
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from tests.fixtures.smtp import SmtpSink


def _email(i: int = 0, *, text: str = "Bonjour") -> OutgoingEmail:
    return OutgoingEmail(
        to=f"user{i}@example.com",
        subject=f"n°{i}",
        html="<p>Bonjour</p>",
        text=text,
        idempotency_key=f"session-{i}",
    )


@dataclass
class _Server:
    """Reads commands off a real socket and answers them. With `hold`, the replies to MAIL and RCPT
    wait until DATA has arrived: only a client that pipelines gets past MAIL."""

    pipelining: bool
    hold: bool = False
    #: Answer MAIL with this and close the connection, as a server shutting down does.
    mail_refusal: bytes | None = None
    #: Answer the message's end with this instead of a 250.
    end_reply: bytes = b"250-Queued\r\n250 as 7\r\n"
    #: Read nothing more once DATA is answered, until `resume()`: a server that stopped reading (a
    #: tarpit, a hung MTA), then reads everything left.
    stall: bool = False
    chunks: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: list[_ServerProtocol] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def resume(self) -> None:
        for connection in self.connections:
            connection.transport.resume_reading()


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buffer = b""
        self.held: list[bytes] = []
        self.in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.append(self)
        transport.write(b"220 stub ESMTP\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.closed.set()

    def data_received(self, data: bytes) -> None:
        self.server.chunks.append(data)
        self.buffer += data
        while not self.transport.is_closing():
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end == -1:
                    return
                self.server.bodies.append(self.buffer[: end + 2])
                self.buffer, self.in_data = self.buffer[end + 5 :], False
                self.transport.write(self.server.end_reply)
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                return
            self.buffer = rest
            self.answer(line[:4].upper())

    def answer(self, verb: bytes) -> None:
        server = self.server
        if verb == b"EHLO":
            offered = b"250-PIPELINING\r\n" if server.pipelining else b""
            self.transport.write(b"250-stub\r\n" + offered + b"250 SIZE 1000000\r\n")
        elif verb == b"MAIL" and server.mail_refusal is not None:
            self.transport.write(server.mail_refusal)
            self.transport.close()
        elif verb in (b"MAIL", b"RCPT"):
            self.held.append(b"250 OK\r\n")
            if not server.hold:
                self.transport.write(self.held.pop())
        elif verb == b"DATA":
            self.in_data = True
            self.transport.write(b"".join(self.held) + b"354 Go ahead\r\n")
            self.held.clear()
            if server.stall:
                self.transport.pause_reading()
        elif verb == b"QUIT":
            self.transport.write(b"221 Bye\r\n")
            self.transport.close()
        else:
            self.transport.write(b"502 Not implemented\r\n")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[_Server], Any]]:
    servers: list[asyncio.Server] = []

    async def start(server: _Server) -> int:
        listening = await asyncio.get_running_loop().create_server(
            lambda: _ServerProtocol(server), "127.0.0.1", 0
        )
        servers.append(listening)
        port: int = listening.sockets[0].getsockname()[1]
        return port

    yield start
    for listening in servers:
        listening.close()


@pytest.fixture
async def channel() -> AsyncIterator[Callable[..., SmtpEmailChannel]]:
    """SMTP channels to 127.0.0.1 without TLS (no database: these tests run once, not once per one)."""
    made: list[SmtpEmailChannel] = []

    def factory(**overrides: Any) -> SmtpEmailChannel:
        values = {"email_from": "envoi <no-reply@envoi.test>", "smtp_host": "127.0.0.1", "smtp_security": "none",
                  "smtp_timeout_s": 5, **overrides}  # fmt: skip
        made.append(SmtpEmailChannel(Settings(_env_file=None, **values)))  # type: ignore[call-arg]
        return made[-1]

    yield factory
    for built in made:
        await built.aclose()


async def test_over_a_server_offering_pipelining_mail_rcpt_and_data_go_in_one_write(
    serve: Any, channel: Any
) -> None:
    server = _Server(pipelining=True, hold=True)
    smtp = channel(smtp_port=await serve(server))
    await smtp.send(_email(1))
    await smtp.send(_email(2))  # and again over the kept connection
    envelopes = [chunk.split(b"\r\n") for chunk in server.chunks if chunk.startswith(b"MAIL")]
    assert len(envelopes) == 2
    for mail, rcpt, data, *_ in envelopes:
        assert mail.startswith(b"MAIL FROM:<no-reply@envoi.test> SIZE=")
        assert rcpt.startswith(b"RCPT TO:<user") and data == b"DATA"
    assert [b"Subject: =?utf-8?q?n=C2=B0" in body for body in server.bodies] == [True, True]


async def test_without_pipelining_each_command_waits_for_its_reply(serve: Any, channel: Any) -> None:
    server = _Server(pipelining=False)
    smtp = channel(smtp_port=await serve(server))
    await smtp.send(_email())
    commands = [chunk for chunk in server.chunks if chunk[:4] in (b"MAIL", b"RCPT", b"DATA")]
    assert [chunk[:4] for chunk in commands] == [b"MAIL", b"RCPT", b"DATA"]
    assert all(chunk.count(b"\r\n") == 1 for chunk in commands)  # one command per write
    assert len(server.bodies) == 1


async def test_without_pipelining_a_server_holding_mail_replies_is_not_answered_early(
    serve: Any, channel: Any
) -> None:
    # The same holding server, not offering PIPELINING: the client waits at MAIL until its timeout,
    # which shows the client does not send ahead of a server that did not say it may.
    server = _Server(pipelining=False, hold=True)
    smtp = channel(smtp_port=await serve(server), smtp_timeout_s=0.5)
    with pytest.raises(TransientDeliveryError) as caught:
        await smtp.send(_email())
    assert caught.value.code == "TIMEOUT"
    assert [chunk[:4] for chunk in server.chunks if chunk[:4] in (b"MAIL", b"RCPT", b"DATA")] == [b"MAIL"]


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-at-a-time"])
@pytest.mark.parametrize(
    ("stage", "code", "error", "words"),
    [
        ("mail", 550, PermanentDeliveryError, "Sender refused: 550"),
        ("rcpt", 550, PermanentDeliveryError, "Recipient refused: 550"),
        ("rcpt", 451, TransientDeliveryError, "Recipient refused: 451"),
        ("data", 554, PermanentDeliveryError, "Message refused: 554"),
    ],
)
async def test_a_refusal_fails_the_send_and_the_next_goes_over_a_new_connection(
    smtp_sink: SmtpSink,
    unpipelined_smtp_sink: SmtpSink,
    channel: Any,
    pipelined: bool,
    stage: Any,
    code: int,
    error: type[Exception],
    words: str,
) -> None:
    sink = smtp_sink if pipelined else unpipelined_smtp_sink
    smtp = channel(smtp_port=sink.port)
    await smtp.send(_email(1))
    opened = smtp.pool.opened
    sink.fail_next(code=code, stage=stage)
    with pytest.raises(error, match=words):
        await smtp.send(_email(2))
    await smtp.send(_email(3))
    assert smtp.pool.opened == opened + 1  # the refused send's connection was not used again
    assert [m.message["Subject"] for m in sink.messages] == ["n°1", "n°3"]


async def test_a_server_closing_after_refusing_mail_reports_the_refusal(serve: Any, channel: Any) -> None:
    server = _Server(pipelining=True, mail_refusal=b"421 4.3.2 Shutting down\r\n")
    smtp = channel(smtp_port=await serve(server))
    with pytest.raises(TransientDeliveryError, match="Sender refused: 421") as caught:
        await smtp.send(_email())
    assert caught.value.code == "421"  # not "connection lost": the RCPT and DATA replies never came
    assert server.bodies == []


async def test_a_421_sent_while_idle_sends_the_next_message_over_a_new_connection(
    serve: Any, channel: Any
) -> None:
    # The server says 421 right after its 250 and keeps the connection open: the next envelope's first
    # reply is that 421, not a 250 for MAIL, so the message goes once more over a new connection.
    server = _Server(pipelining=True, end_reply=b"250 OK\r\n421 4.4.2 Idle too long\r\n")
    smtp = channel(smtp_port=await serve(server))
    await smtp.send(_email(1))
    await smtp.send(_email(2))
    assert smtp.pool.opened == 2
    assert len(server.bodies) == 2


async def test_a_refusal_at_the_end_of_the_message_fails_it(serve: Any, channel: Any) -> None:
    server = _Server(pipelining=True, end_reply=b"552-Too big\r\n552 5.3.4 Over quota\r\n")
    smtp = channel(smtp_port=await serve(server))
    with pytest.raises(PermanentDeliveryError, match=r"Message refused: 552 Too big\n5\.3\.4 Over quota"):
        await smtp.send(_email())


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-at-a-time"])
async def test_a_body_cannot_end_the_message_early_or_smuggle_a_second_one(
    smtp_sink: SmtpSink, unpipelined_smtp_sink: SmtpSink, channel: Any, pipelined: bool
) -> None:
    sink = smtp_sink if pipelined else unpipelined_smtp_sink
    hostile = "Bonjour\n.\nMAIL FROM:<evil@example.com>\nRCPT TO:<victim@example.com>\nDATA\n..two\n.\n"
    smtp = channel(smtp_port=sink.port)
    await smtp.send(_email(text=hostile))
    await smtp.send(_email(2))  # the connection is still in step
    [first, second] = sink.messages
    assert first.text is not None and first.text.replace("\r\n", "\n") == hostile
    assert first.rcpt_tos == ["user0@example.com"] and second.rcpt_tos == ["user2@example.com"]


@pytest.mark.parametrize(
    "hostile",
    [
        "user@example.com> NOTIFY=SUCCESS",
        "user@example.com NOTIFY=SUCCESS",
        "user@example.com\tSIZE=1",
        "user@example.com>\r\nRCPT TO:<victim@example.com",
        "user@example.com\nRSET",
    ],
)
async def test_an_address_cannot_add_a_parameter_or_a_command(serve: Any, channel: Any, hostile: str) -> None:
    server = _Server(pipelining=True)
    smtp = channel(smtp_port=await serve(server))
    email = OutgoingEmail(to=hostile, subject="x", html="<p>x</p>", text="x", idempotency_key="hostile")
    with contextlib.suppress(PermanentDeliveryError):  # refused outright, or sent to one mangled mailbox
        await smtp.send(email)
    envelope = b"".join(server.chunks).split(b"\r\nDATA\r\n")[0].split(b"\r\n")[1:]  # after EHLO
    assert len(envelope) in (0, 2)  # nothing sent, or one MAIL and one RCPT, each without extras
    if envelope:
        assert re.fullmatch(rb"MAIL FROM:<no-reply@envoi.test> SIZE=\d+", envelope[0])
        assert re.fullmatch(rb"RCPT TO:<[^ <>]*>", envelope[1])


async def test_a_body_cut_short_by_a_timeout_is_not_finished_behind_the_senders_back(serve: Any) -> None:
    # The send fails (and its job will be retried): a server reading again later must not find a
    # whole message, ended by its ".", in what the client had buffered, or the retry sends it twice.
    server = _Server(pipelining=True, stall=True)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=await serve(server), timeout=0.5, start_tls=False)
    await client.connect()
    session = await SmtpSession.adopt(client)
    body = (b"x" * 76 + b"\r\n") * (24 * 1024 * 1024 // 78)  # more than the kernel's buffers hold
    with pytest.raises(aiosmtplib.SMTPReadTimeoutError):
        await session.sendmail("a@example.com", "b@example.com", body, [])
    assert not session.is_connected
    server.resume()
    await server.closed.wait()
    assert server.bodies == []


async def test_a_reply_arriving_line_by_line_is_read_whole() -> None:
    # Each line goes in on its own, as from a server writing one line per segment: the parser goes on
    # from where it stopped (it read the whole buffer again at each line: 19 s of CPU for this one).
    session, theirs = await _session_on_a_socket()
    for line in [b"250-x\r\n"] * 9000 + [b"250 end\r\n"]:
        session.data_received(line)
    reply = await session.read_reply()
    assert reply.code == 250 and reply.message == "\n".join(["x"] * 9000 + ["end"])
    session.close()
    theirs.close()


async def _session_on_a_socket() -> tuple[SmtpSession, socket.socket]:
    """A session over a real socket pair: the test writes the server's side by hand."""
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    assert isinstance(transport, asyncio.Transport)
    session = SmtpSession(transport, extensions=["pipelining"], timeout=2)
    transport.set_protocol(session)
    return session, theirs


_line_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_replies = st.lists(
    st.tuples(st.integers(200, 599), st.lists(_line_text, min_size=1, max_size=3)), min_size=1, max_size=5
)


@settings(max_examples=60, deadline=None)
@given(replies=_replies, cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_replies_are_read_whole_and_in_order_however_the_bytes_arrive(
    replies: list[tuple[int, list[str]]], cuts: list[int]
) -> None:
    wire = b"".join(
        b"".join(
            f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode() for i, line in enumerate(lines)
        )
        for code, lines in replies
    )

    async def scenario() -> list[aiosmtplib.SMTPResponse]:
        session, theirs = await _session_on_a_socket()
        points = sorted({0, len(wire), *(cut % (len(wire) + 1) for cut in cuts)})
        for start, end in itertools.pairwise(points):
            session.data_received(wire[start:end])
        read = [await session.read_reply() for _ in replies]
        session.close()
        theirs.close()
        return read

    read = asyncio.run(scenario())
    assert [(r.code, r.message) for r in read] == [
        (code, "\n".join(line.strip(" \t") for line in lines)) for code, lines in replies
    ]


@pytest.mark.parametrize(
    ("garbage", "words"),
    [
        (b"hello there\r\n", "Malformed SMTP reply"),
        (b"250-" + b"x" * 70_000, "SMTP reply too long"),
        (b"250 OK\r\n" * 100_000, "replies nobody asked for"),  # a server flooding an idle connection
    ],
)
async def test_a_garbled_reply_fails_the_read_and_closes_the_connection(garbage: bytes, words: str) -> None:
    session, theirs = await _session_on_a_socket()
    session.data_received(garbage)
    with pytest.raises(aiosmtplib.SMTPResponseException, match=words):
        await session.read_reply()
    assert not session.is_connected
    theirs.close()
