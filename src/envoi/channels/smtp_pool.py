"""Kept SMTP connections, so that a message costs its own commands (MAIL, RCPT, DATA) and not a
connection's (connect, greeting, EHLO, STARTTLS, EHLO, AUTH, QUIT): 2 round trips (4 where the server
does not offer PIPELINING, `SmtpSession`) instead of about 10.

    size            at most this many connections at once; a send beyond waits for one to come free
    idle_s          a connection unused this long is closed (QUIT)
    max_messages    after this many messages a connection is closed (QUIT) and the next send opens another

A connection goes back to the pool only after a send that succeeded. Any failure (a refusal, a timeout,
a 421, a dropped connection, a cancelled job) closes it without RSET or QUIT: after a failure during DATA
neither side knows where the other stands, and a server that timed out may answer the old command to
the next one. A kept connection found closed when taken (the server's own idle timeout, a 421 sent while
idle) is dropped and another opened. A kept connection that turns out dead during the send (the server
closed it as the send began, or cut it before its 250) or answers 421 at MAIL is dropped and the message
goes once more, over a new connection: no 250 came, so the server did not take the message (the same
bet a job retry makes, taken at once). A new connection gets no such second try. Every other failure is
the caller's (`smtp_error()` decides the retry: a 421 at RCPT or DATA, a server saying slow down, waits
for the job's backoff).

The connections belong to the event loop that opened them: used from another loop (a new `asyncio.run`),
the pool forgets the old loop's connections. `aclose()` says QUIT on the idle ones; those in use are
closed when handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiosmtplib

from envoi.channels.smtp_session import SmtpSession

log = logging.getLogger("envoi.channels.email")

T = TypeVar("T")
#: Opens, greets, secures and logs in one connection (the channel's settings); raises on failure.
Connect = Callable[[], Awaitable[SmtpSession]]

#: The longest a QUIT may take when closing a connection (it is only politeness: then the socket closes).
QUIT_TIMEOUT_S = 0.5
#: aiosmtplib's answer code for "service not available, closing the channel".
SERVICE_CLOSING = 421


@dataclass(eq=False)
class _Kept:
    client: SmtpSession
    generation: int
    sent: int = 0
    expiry: asyncio.TimerHandle | None = None


class SmtpPool:
    def __init__(self, connect: Connect, *, size: int, idle_s: float, max_messages: int) -> None:
        self._connect = connect
        self.size, self.idle_s, self.max_messages = size, idle_s, max_messages
        self._idle: list[_Kept] = []  # most recently used last: taken first, so the others idle out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(size)
        self._quitting: set[asyncio.Task[None]] = set()
        #: Bumped by aclose(): a connection of an older generation is closed when handed back.
        self._generation = 0
        #: Connections opened so far (`envoi providers`, tests).
        self.opened = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def run(self, use: Callable[[SmtpSession], Awaitable[T]]) -> T:
        """`use(client)` over a kept connection (or a new one), holding one of the `size` slots."""
        self._bind()
        async with self._slots:
            kept = self._take_idle()
            if kept is not None:
                try:
                    return self._handed_back(kept, await use(kept.client))
                except BaseException as exc:
                    self._discard(kept)
                    if not _stale(exc):
                        raise
                    log.info(
                        "A kept SMTP connection was closed by the server (%s): sending over a new one", exc
                    )
            kept = await self._open()
            try:
                return self._handed_back(kept, await use(kept.client))
            except BaseException:
                self._discard(kept)
                raise

    async def aclose(self) -> None:
        """QUIT on every idle connection (bounded by QUIT_TIMEOUT_S each, in parallel)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        if self._loop is not asyncio.get_running_loop():
            for kept in idle:  # another loop's connections: no QUIT can be said from here
                self._discard(kept)
            return
        for kept in idle:
            self._retire(kept)
        if self._quitting:
            await asyncio.wait(list(self._quitting))

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        # Transports belong to the loop that made them; that loop may be closed already.
        for kept in self._idle:
            _close_quietly(kept.client)
        self._idle.clear()
        self._quitting.clear()
        self._slots = asyncio.Semaphore(self.size)
        self._loop = loop

    def _take_idle(self) -> _Kept | None:
        while self._idle:
            kept = self._idle.pop()
            if kept.expiry is not None:
                kept.expiry.cancel()
            if kept.client.is_connected:
                return kept
            _close_quietly(kept.client)  # closed by the server while idle
        return None

    async def _open(self) -> _Kept:
        client = await self._connect()
        self.opened += 1
        return _Kept(client, self._generation)

    def _handed_back(self, kept: _Kept, result: T) -> T:
        kept.sent += 1
        if (
            kept.generation != self._generation
            or kept.sent >= self.max_messages
            or not kept.client.is_connected
        ):
            self._retire(kept)
        else:
            assert self._loop is not None  # bound by run()
            kept.expiry = self._loop.call_later(self.idle_s, self._expire, kept)
            self._idle.append(kept)
        return result

    def _expire(self, kept: _Kept) -> None:
        if kept in self._idle:
            self._idle.remove(kept)
            self._retire(kept)

    def _retire(self, kept: _Kept) -> None:
        """Closed politely (QUIT), in the background: the send that used it is done."""
        if kept.expiry is not None:
            kept.expiry.cancel()
        task = asyncio.get_running_loop().create_task(_quit(kept.client), name="envoi-smtp-quit")
        self._quitting.add(task)
        task.add_done_callback(self._quitting.discard)

    def _discard(self, kept: _Kept) -> None:
        """Closed at once, without a word: its state on the server is unknown."""
        if kept.expiry is not None:
            kept.expiry.cancel()
        _close_quietly(kept.client)


def _stale(exc: BaseException) -> bool:
    """The kept connection was dead, or the server closing it: no 250 came for this message."""
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, aiosmtplib.SMTPSenderRefused) and exc.code == SERVICE_CLOSING


async def _quit(client: SmtpSession) -> None:
    try:
        async with asyncio.timeout(QUIT_TIMEOUT_S):
            await client.quit()
    except Exception as exc:  # the server went first, or is slow: the socket is closed below anyway
        log.debug("SMTP QUIT not answered: %s", exc)
    finally:
        _close_quietly(client)


def _close_quietly(client: SmtpSession) -> None:
    # A transport whose loop is closed raises on close(); it is gone with its loop anyway.
    with contextlib.suppress(RuntimeError):
        client.close()
