"""(10) The worker's connections to Redis go silent without being closed (a NAT that forgot the flows, a
failover behind a proxy): the worker notices within its socket timeout, reconnects by itself, logs it,
and takes the new jobs, with nobody restarting it."""

from __future__ import annotations

import time

from envoi.queue.connection import WORKER_SOCKET_TIMEOUT_S
from tests.chaos.conftest import Stage
from tests.chaos.support import enqueue_emails, received, recipients, report
from tests.fixtures.proxy import TcpProxy
from tests.helpers import eventually


async def test_a_silently_dropped_worker_connection_recovers_by_itself(stage: Stage) -> None:
    envoi = stage.envoi()  # the producer talks to Redis directly
    with TcpProxy("127.0.0.1", stage.redis.port) as proxy:
        worker = stage.worker(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        await enqueue_emails(envoi, ["before@example.com"])
        await eventually(lambda: stage.smtp.messages, timeout=30, message="the worker working")
        connected = proxy.accepted
        proxy.sever()
        dropped = time.monotonic()
        after = recipients("after", 5)
        await enqueue_emails(envoi, after)
        await eventually(
            lambda: set(after) <= set(received(stage.smtp)),
            timeout=WORKER_SOCKET_TIMEOUT_S + 30,
            interval=0.1,
            message="the new jobs done",
        )
        recovered = time.monotonic() - dropped
        reconnections = proxy.accepted - connected
    report("silent connection drop", recovered_s=recovered, reconnections=reconnections)
    assert reconnections >= 1
    assert "Redis connection lost" in worker.output()
    assert "Redis connection restored" in worker.output()
    assert received(stage.smtp) == {"before@example.com": 1, **dict.fromkeys(after, 1)}
