"""The SMTP connection pool (SMTP_POOL_SIZE, SMTP_POOL_IDLE_S, SMTP_POOL_MAX_MESSAGES) against a real
aiosmtpd server that counts connections, QUITs and disconnects, answers 421, cuts connections and hangs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from envoi.channels.base import OutgoingEmail
from envoi.channels.email_smtp import SmtpEmailChannel
from envoi.errors import DeliveryError, TransientDeliveryError
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import email_data
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, process_env


def _email(i: int) -> OutgoingEmail:
    return OutgoingEmail(
        to=f"user{i}@example.com", subject=f"n°{i}", html="<p>x</p>", text="x", idempotency_key=f"pool-{i}"
    )


@pytest.fixture
async def channel(make_delivery_settings: Any) -> AsyncIterator[Callable[..., SmtpEmailChannel]]:
    """A channel factory; every channel made is closed at the end of the test."""
    made: list[SmtpEmailChannel] = []

    def factory(**overrides: Any) -> SmtpEmailChannel:
        made.append(SmtpEmailChannel(make_delivery_settings(**overrides)))
        return made[-1]

    yield factory
    for built in made:
        await built.aclose()


@pytest.fixture
async def sink(smtp_sink: SmtpSink) -> SmtpSink:
    # aiosmtpd's controller connects once at start to see it is up: wait for it to be gone, then count.
    await eventually(lambda: smtp_sink.open_connections == 0)
    return smtp_sink


def _connections_since(sink: SmtpSink, before: int) -> int:
    return sink.connections - before


async def test_many_messages_go_over_at_most_size_connections(sink: SmtpSink, channel: Any) -> None:
    smtp = channel(smtp_pool_size=3)
    before = sink.connections
    await asyncio.gather(*(smtp.send(_email(i)) for i in range(30)))
    assert len(sink.messages) == 30
    assert 1 <= _connections_since(sink, before) <= 3
    assert smtp.pool.opened == _connections_since(sink, before)
    await smtp.aclose()


async def test_one_after_another_reuses_one_connection(sink: SmtpSink, channel: Any) -> None:
    smtp = channel()
    before = sink.connections
    for i in range(5):
        await smtp.send(_email(i))
    assert _connections_since(sink, before) == 1
    assert sink.open_connections == 1  # kept between the sends
    await smtp.aclose()


async def test_max_messages_rotates_the_connection(sink: SmtpSink, channel: Any) -> None:
    smtp = channel(smtp_pool_max_messages=2)
    before, quits = sink.connections, sink.quits
    for i in range(5):
        await smtp.send(_email(i))
    assert _connections_since(sink, before) == 3  # 2 + 2 + 1
    await eventually(lambda: sink.quits - quits == 2)  # the two full ones said QUIT
    await smtp.aclose()


async def test_max_messages_one_is_a_connection_per_message(sink: SmtpSink, channel: Any) -> None:
    smtp = channel(smtp_pool_max_messages=1)
    before = sink.connections
    for i in range(3):
        await smtp.send(_email(i))
    assert _connections_since(sink, before) == 3
    await eventually(lambda: sink.open_connections == 0)


async def test_an_idle_connection_is_closed_after_idle_s(sink: SmtpSink, channel: Any) -> None:
    smtp = channel(smtp_pool_idle_s=0.2)
    quits = sink.quits
    await smtp.send(_email(0))
    assert sink.open_connections == 1
    await eventually(lambda: sink.open_connections == 0)
    assert sink.quits == quits + 1
    assert smtp.pool.idle == 0
    await smtp.send(_email(1))  # and the next send opens another
    assert len(sink.messages) == 2
    await smtp.aclose()


async def test_after_a_421_the_next_message_reconnects_and_is_delivered(sink: SmtpSink, channel: Any) -> None:
    smtp = channel()
    await smtp.send(_email(0))
    sink.fail_next(code=421, stage="rcpt")  # "service closing" in the middle of the envelope
    with pytest.raises(TransientDeliveryError) as raised:
        await smtp.send(_email(1))
    assert raised.value.code == "421"
    before = sink.connections
    await smtp.send(_email(2))
    assert _connections_since(sink, before) == 1
    assert [m.rcpt_tos for m in sink.messages] == [["user0@example.com"], ["user2@example.com"]]
    await smtp.aclose()


async def test_a_421_at_mail_on_a_kept_connection_is_sent_over_a_new_one(
    sink: SmtpSink, channel: Any
) -> None:
    """Nothing of the message left at MAIL: the same send goes again, once, over a new connection."""
    smtp = channel()
    await smtp.send(_email(0))
    sink.fail_next(code=421, stage="mail")
    before = sink.connections
    await smtp.send(_email(1))
    assert _connections_since(sink, before) == 1
    assert len(sink.messages) == 2
    assert sink.refusals == [("mail", 421)]
    await smtp.aclose()


async def test_a_connection_closed_by_the_server_while_idle_is_replaced(sink: SmtpSink, channel: Any) -> None:
    smtp = channel()
    await smtp.send(_email(0))
    sink.hang_up()  # the server's own idle timeout, or its restart
    await eventually(lambda: sink.open_connections == 0)
    before = sink.connections
    await smtp.send(_email(1))  # no error: the dead connection is not used
    assert _connections_since(sink, before) == 1
    assert len(sink.messages) == 2
    await smtp.aclose()


@pytest.mark.parametrize("stage", ["mail", "data"])
async def test_a_kept_connection_cut_before_its_250_sends_over_a_new_one(
    sink: SmtpSink, channel: Any, stage: Any
) -> None:
    smtp = channel()
    await smtp.send(_email(0))
    sink.drop_next(stage=stage)
    before = sink.connections
    await smtp.send(_email(1))
    assert _connections_since(sink, before) == 1
    assert [m.rcpt_tos[0] for m in sink.messages] == ["user0@example.com", "user1@example.com"]
    await smtp.aclose()


async def test_a_new_connection_cut_is_not_tried_twice(sink: SmtpSink, channel: Any) -> None:
    """Only a kept connection gets a second try: a server cutting every DATA fails the send (the job
    retries it later), after two connections."""
    smtp = channel()
    sink.drop_next(stage="data")
    before = sink.connections
    with pytest.raises(TransientDeliveryError) as raised:
        await smtp.send(_email(0))
    assert raised.value.code == "CONNECTION"
    assert _connections_since(sink, before) == 1
    await smtp.send(_email(1))
    sink.drop_next(stage="data")
    sink.drop_next(stage="data")
    with pytest.raises(TransientDeliveryError):
        await smtp.send(_email(2))  # kept: tried once more over a new connection, cut again
    assert _connections_since(sink, before) == 3
    assert [m.rcpt_tos[0] for m in sink.messages] == ["user1@example.com"]


@pytest.mark.parametrize("failure", ["451 at DATA", "550 at RCPT", "552 at DATA"])
async def test_an_error_mid_message_discards_the_connection(
    sink: SmtpSink, channel: Any, failure: str
) -> None:
    smtp = channel()
    await smtp.send(_email(0))
    if failure == "451 at DATA":
        sink.fail_next(code=451, stage="data")
    elif failure == "552 at DATA":
        sink.fail_next(code=552, stage="data")
    else:
        sink.fail_next(code=550, stage="rcpt")
    with pytest.raises(DeliveryError):  # transient or permanent by the code: not the subject here
        await smtp.send(_email(1))
    # The failed connection is closed by the client (no RSET and reuse), and the next send opens another.
    await eventually(lambda: sink.open_connections == 0)
    before = sink.connections
    await smtp.send(_email(2))
    assert _connections_since(sink, before) == 1
    assert [m.rcpt_tos[0] for m in sink.messages] == ["user0@example.com", "user2@example.com"]
    await smtp.aclose()


async def test_a_hanging_server_is_bounded_by_the_timeout_and_frees_the_slot(
    sink: SmtpSink, channel: Any
) -> None:
    smtp = channel(smtp_pool_size=1, smtp_timeout_s=0.3)
    sink.slow_down(30, stage="data")  # no answer to the end of DATA
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError) as raised:
        await smtp.send(_email(0))
    assert time.monotonic() - started < 5
    assert raised.value.code == "TIMEOUT"
    sink.speed_up()
    # The only slot is free again: the next send goes, over a new connection.
    await asyncio.wait_for(smtp.send(_email(1)), timeout=5)
    assert [m.rcpt_tos[0] for m in sink.messages] == ["user1@example.com"]
    await smtp.aclose()


async def test_a_cancelled_send_frees_its_slot_and_discards_its_connection(
    sink: SmtpSink, channel: Any
) -> None:
    smtp = channel(smtp_pool_size=1, smtp_timeout_s=60)  # the cancel comes first, however slow the machine
    sink.slow_down(30, stage="rcpt")
    sending = asyncio.create_task(smtp.send(_email(0)))
    # Cancelled while the sink holds this send's RCPT, the middle of a send (`transactions() == 1`, its
    # MAIL, once let a cancel through without a CancelledError in a loaded CI run; the cause is not known).
    await eventually(lambda: "user0@example.com" in sink.sending_to())
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    sink.speed_up()
    await asyncio.wait_for(smtp.send(_email(1)), timeout=5)
    assert [m.rcpt_tos[0] for m in sink.messages] == ["user1@example.com"]
    await smtp.aclose()


async def test_a_refused_connection_frees_its_slot(channel: Any) -> None:
    smtp = channel(smtp_port=1, smtp_pool_size=1)  # nothing listens on port 1
    for i in range(3):  # a slot leaked by the first failure would hang the second send
        with pytest.raises(TransientDeliveryError):
            await asyncio.wait_for(smtp.send(_email(i)), timeout=5)


async def test_the_pool_follows_a_new_event_loop(sink: SmtpSink, make_delivery_settings: Any) -> None:
    """`asyncio.run` twice (a script, SyncClient): the second loop opens its own connection."""
    smtp = SmtpEmailChannel(make_delivery_settings())

    async def once(i: int) -> None:
        await smtp.send(_email(i))

    await asyncio.to_thread(asyncio.run, once(0))
    await asyncio.to_thread(asyncio.run, once(1))
    assert len(sink.messages) == 2
    await smtp.aclose()


async def test_closing_the_worker_and_envoi_says_quit(
    sink: SmtpSink, make_delivery_settings: Any, start_worker: Any
) -> None:
    envoi = Envoi(make_delivery_settings())
    worker = await start_worker(envoi, concurrency=5)
    before, quits = sink.connections, sink.quits
    for i in range(10):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data(to=f"u{i}@example.com"))
    await eventually(lambda: len(sink.messages) == 10)
    opened = _connections_since(sink, before)
    assert 1 <= opened <= 5
    assert sink.open_connections == opened  # kept while the worker runs
    await worker.close(timeout=5)
    await envoi.close()
    assert sink.quits - quits == opened
    await eventually(lambda: sink.open_connections == 0)


async def test_a_worker_process_stopped_by_sigterm_says_quit(
    sink: SmtpSink,
    make_delivery_settings: Any,
    make_envoi: Any,
    processes: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    """`envoi worker`, as deployed: its kept connections are closed with QUIT when it stops."""
    settings = make_delivery_settings()
    envoi: Envoi = make_envoi(settings)  # the producer
    env = process_env(
        settings,
        EMAIL_PROVIDER="smtp",
        EMAIL_FROM="envoi <no-reply@envoi.test>",
        SMTP_HOST=sink.host,
        SMTP_PORT=str(sink.port),
        SMTP_SECURITY="none",
        SMTP_POOL_SIZE="3",
    )
    # From tmp_path: no .env file from the repository.
    worker = processes([sys.executable, "-m", "envoi", "worker", "--concurrency", "3"], env=env, cwd=tmp_path)
    before, quits = sink.connections, sink.quits
    for i in range(9):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data(to=f"p{i}@example.com"))
    await eventually(lambda: len(sink.messages) == 9, timeout=30, message="9 emails delivered")
    opened = _connections_since(sink, before)
    assert 1 <= opened <= 3
    assert sink.open_connections == opened
    worker.send_signal(signal.SIGTERM)
    output, _ = await asyncio.to_thread(worker.communicate, timeout=30)
    assert worker.returncode == 0, output[-2000:]
    assert sink.quits - quits == opened
    await eventually(lambda: sink.open_connections == 0)
