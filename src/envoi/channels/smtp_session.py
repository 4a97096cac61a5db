"""A kept SMTP connection's transactions, with the envelope pipelined when the server offers it.

aiosmtplib opens the connection (greeting, EHLO, STARTTLS, EHLO, AUTH); `SmtpSession.adopt()` then
takes over its transport. Over a server that offers PIPELINING (RFC 2920, as Postfix, Exim, Gmail
and SES do), MAIL, RCPT and DATA go out in one write and their three replies come back in one round
trip, then the body and its reply: two round trips per message instead of four. aiosmtplib cannot do
this: its protocol reads one reply per command written and drops what arrives after it, so after the
set-up the transport is handed to this module's protocol and aiosmtplib's client is not used again.

Failures are raised as aiosmtplib's exceptions (SMTPSenderRefused, SMTPRecipientRefused,
SMTPDataError, SMTPServerDisconnected, SMTPReadTimeoutError), so that `smtp_error()` and the pool read
them as they read aiosmtplib's own. After a failure the connection is in an unknown state: the pool
closes it and no RSET is sent.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Sequence

import aiosmtplib
from aiosmtplib.email import quote_address

#: A reply longer than this is refused (aiosmtplib's limit): a server gone wrong, not a slow one.
MAX_REPLY_BYTES = 64 * 1024
#: More replies waiting than commands a transaction sends (3) plus a few unasked ones (a 421 sent
#: while idle): a server talking on its own, whose replies would otherwise pile up in memory.
MAX_WAITING_REPLIES = 8
_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")
#: The error a command's unexpected reply becomes.
_Refusal = Callable[[aiosmtplib.SMTPResponse], aiosmtplib.SMTPResponseException]


class SmtpSession(asyncio.Protocol):
    def __init__(
        self, transport: asyncio.Transport, *, extensions: Sequence[str], timeout: float | None
    ) -> None:
        self._transport = transport
        self._extensions = frozenset(extension.lower() for extension in extensions)
        self._timeout = timeout
        self._buffer = bytearray()
        self._replies: deque[aiosmtplib.SMTPResponse] = deque()
        self._arrived: asyncio.Event = asyncio.Event()
        self._lost: Exception | None = None
        #: The reply being read: its lines so far, and where the next line starts in `_buffer`.
        self._lines: list[bytes] = []
        self._scanned = 0

    @classmethod
    async def adopt(cls, client: aiosmtplib.SMTP) -> SmtpSession:
        """Take over a connected (and secured, and logged in) aiosmtplib client's transport, once it has
        said EHLO (or HELO to a server refusing EHLO): the extensions offered are known."""
        if client.is_ehlo_or_helo_needed:  # aiosmtplib says EHLO at connect only to STARTTLS or log in
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        transport = client.transport
        if not isinstance(transport, asyncio.Transport) or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost before the first message")
        session = cls(transport, extensions=list(client.esmtp_extensions), timeout=client.timeout)
        transport.set_protocol(session)
        return session

    @property
    def is_connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self._extensions

    def supports(self, extension: str) -> bool:
        return extension.lower() in self._extensions

    async def sendmail(self, sender: str, recipient: str, message: bytes, options: Sequence[str]) -> None:
        """One transaction: MAIL, RCPT and DATA (pipelined when offered), then the message. `message`
        is bytes with CRLF line endings (`render_email`)."""
        smtputf8 = "SMTPUTF8" in options
        if smtputf8 and not self.supports("smtputf8"):
            raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
        encoding = "utf-8" if smtputf8 else "ascii"
        body = _PERIOD_AT_LINE_START.sub(b"..", message)  # RFC 5321 4.5.2: dot-stuffing
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        parameters = ([f"SIZE={len(body)}"] if self.supports("size") else []) + list(options)
        # quote_address puts one mailbox on the line: what would add a parameter or a command is
        # refused (ValueError) or dropped.
        mail = " ".join([f"MAIL FROM:{quote_address(sender)}", *parameters]).encode(encoding)
        rcpt = f"RCPT TO:{quote_address(recipient)}".encode(encoding)
        steps: list[tuple[bytes, tuple[int, ...], _Refusal]] = [
            (mail, (250,), lambda r: aiosmtplib.SMTPSenderRefused(r.code, r.message, sender)),
            (rcpt, (250, 251), lambda r: aiosmtplib.SMTPRecipientRefused(r.code, r.message, recipient)),
            (b"DATA", (354,), lambda r: aiosmtplib.SMTPDataError(r.code, r.message)),
        ]
        if self.pipelining:
            self._write(b"".join(command + b"\r\n" for command, *_ in steps))
        failure: aiosmtplib.SMTPResponseException | None = None
        for command, expected, refusal in steps:
            if not self.pipelining:
                self._write(command + b"\r\n")
            try:
                reply = await self.read_reply()
            except aiosmtplib.SMTPException:
                if failure is not None:  # a server may close after refusing MAIL: the refusal says why
                    raise failure from None
                raise
            if reply.code not in expected and failure is None:
                failure = refusal(reply)
                if not self.pipelining:
                    break
        if failure is not None:
            raise failure
        self._write(body + b".\r\n")
        reply = await self.read_reply()
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)

    async def quit(self) -> None:
        try:
            self._write(b"QUIT\r\n")
            await self.read_reply()
        finally:
            self.close()

    def close(self) -> None:
        # abort(), not close(): close() keeps the socket open until the server has read everything the
        # transport still buffers, and would finish a body the server stopped reading, ending "."
        # included: a message this send reports failed, sent again at the retry. abort() drops it (what
        # the kernel holds already still goes: when no 250 came, no client can know).
        self._transport.abort()

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while (reply := self._parse()) is not None:
                self._replies.append(reply)
                if len(self._replies) > MAX_WAITING_REPLIES:
                    raise aiosmtplib.SMTPResponseException(-1, "SMTP server sent replies nobody asked for")
        except aiosmtplib.SMTPResponseException as exc:
            # The server broke the protocol: nothing it said counts.
            self._replies.clear()
            self._buffer.clear()
            self._lines, self._scanned = [], 0
            self._fail(exc)
            self._transport.abort()
        self._arrived.set()

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._fail(lost)

    # --- inside -------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        # No flow control: the message is in memory already, and the transport buffers what the socket
        # cannot take yet; the reply's timeout bounds a server that never reads it.
        if not self.is_connected:
            raise self._lost or aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._transport.write(data)

    async def read_reply(self) -> aiosmtplib.SMTPResponse:
        try:
            async with asyncio.timeout(self._timeout):
                while not self._replies:
                    if self._lost is not None:
                        raise self._lost
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError as exc:
            self.close()
            raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc
        return self._replies.popleft()

    def _fail(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc
        self._arrived.set()

    def _parse(self) -> aiosmtplib.SMTPResponse | None:
        """The first complete reply in the buffer (its lines joined), taken out of it; None if there is
        none yet. Lines already read are not read again: a reply arriving line by line costs its length."""
        while (end := self._buffer.find(b"\n", self._scanned)) != -1:
            line = bytes(self._buffer[self._scanned : end + 1])
            self._scanned = end + 1
            if not line[:3].isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                raise aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP reply: {line[:80]!r}")
            self._lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del self._buffer[: self._scanned]
                lines, self._lines, self._scanned = self._lines, [], 0
                text = b"\n".join(lines).decode("utf-8", "surrogateescape")
                return aiosmtplib.SMTPResponse(int(line[:3]), text)
        if len(self._buffer) > MAX_REPLY_BYTES:
            raise aiosmtplib.SMTPResponseException(-1, "SMTP reply too long")
        return None
