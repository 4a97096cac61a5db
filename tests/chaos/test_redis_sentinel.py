"""Redis Sentinel: with REDIS_SENTINELS and REDIS_SENTINEL_MASTER, the producer and a real `envoi worker`
find the master through three real sentinels; when the master is killed (SIGKILL) under load, the
replica is promoted and both follow it: every message is sent once, none is lost, and enqueue runs jobs
inline only while there is no master to write to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envoi import metrics
from envoi.embedded_redis import EmbeddedRedis, free_port
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.queue.redis_backend import COMMAND_TIMEOUT_S
from tests.chaos.conftest import Stage
from tests.chaos.support import dead_letter_count, drained, enqueue_emails, received, recipients, report
from tests.fixtures.sentinel import MASTER_NAME, SentinelSet, sentinel_set
from tests.helpers import eventually


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with sentinel_set(tmp_path / "sentinel") as found:
        yield found


@pytest.fixture
def redis_server(sentinels: SentinelSet) -> EmbeddedRedis:
    """The chaos stage's Redis is the set's first master (the stage's fixture, overridden here)."""
    return sentinels.master


def through_sentinels(sentinels: SentinelSet) -> dict[str, Any]:
    """Settings that reach Redis only through the sentinels: REDIS_URL names a port nobody listens on."""
    return {
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "redis_sentinels": sentinels.setting,
        "redis_sentinel_master": MASTER_NAME,
    }


def fallback_runs() -> float:
    """Jobs run inline in this process so far (the `envoi_fallback_runs` counter, all labels)."""
    return sum(
        sample.value
        for metric in metrics.FALLBACK_RUNS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def test_jobs_go_through_the_master_the_sentinels_name(stage: Stage, sentinels: SentinelSet) -> None:
    await sentinels.ready()
    via = through_sentinels(sentinels)
    envoi = stage.envoi(**via)
    to = recipients("sentinel", 20)
    await enqueue_emails(envoi, to)
    worker = stage.worker(**via)
    await eventually(lambda: set(received(stage.smtp)) == set(to), timeout=60, message="every message sent")
    await eventually(lambda: drained(envoi), timeout=30, message="every job done")
    assert all(n == 1 for n in received(stage.smtp).values())
    assert worker.process.poll() is None, worker.output()


@pytest.mark.serial
async def test_a_master_killed_under_load_fails_over_with_nothing_lost_or_sent_twice(
    stage: Stage, sentinels: SentinelSet
) -> None:
    await sentinels.ready()
    via = through_sentinels(sentinels)
    envoi = stage.envoi(**via, redis_connect_timeout_ms=300)
    stage.smtp.slow_down(0.05, stage="rcpt")
    before = recipients("before", 100)
    await enqueue_emails(envoi, before)
    worker = stage.worker(**via)
    await eventually(lambda: len(stage.smtp.messages) >= 10, timeout=60, message="the worker sending")

    # What this test proves is that envoi follows the failover, not that Redis replication is
    # synchronous (it is not, docs/operations.md): the kill comes once the replica has every write.
    await eventually(sentinels.replicated, timeout=30, message="the replica caught up")
    inline_before = fallback_runs()
    assert sentinels.master.process is not None
    killed_at = time.monotonic()
    sentinels.master.process.kill()  # SIGKILL: the replica has what the master acknowledged, or close to
    sentinels.master.process.wait()

    # Enqueue without pause until the sentinels name the replica, then 100 more: the load spans the
    # failover. Each result says whether the job went to Redis or ran inline (the breaker).
    inline_at: list[float] = []

    async def enqueue(to: str) -> str:
        data = {"to": to, "subject": "Rappel", "html": f"<p>Bonjour {to}</p>"}
        result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
        if result.mode != "queued":
            inline_at.append(time.monotonic())
        return result.mode

    during: list[str] = []
    promoted_at: float | None = None
    while promoted_at is None:
        during.append(f"during-{len(during):05d}@example.com")
        await enqueue(during[-1])
        if await sentinels.master_port() == sentinels.replica.port:
            promoted_at = time.monotonic()
        assert time.monotonic() - killed_at < 60, "no failover within 60 s"
    after = recipients("after", 100)
    modes_after = [await enqueue(to) for to in after]

    everyone = before + during + after

    def missing() -> list[str]:
        return sorted(set(everyone) - set(received(stage.smtp)))

    try:
        await eventually(lambda: not missing(), timeout=60, message="every message sent")
    except AssertionError:
        raise AssertionError(f"never sent: {missing()[:20]} ({len(missing())})") from None
    try:
        await eventually(lambda: drained(envoi), timeout=30, message="every job done")
    except AssertionError:
        raise AssertionError(f"not drained: {await envoi.queue.counts(NOTIFICATIONS_QUEUE)}") from None
    counts = received(stage.smtp)
    failover_s = promoted_at - killed_at
    inline_span_s = (inline_at[-1] - killed_at) if inline_at else 0.0
    report(
        "Sentinel failover under load",
        messages=len(everyone),
        received=sum(counts.values()),
        failover_s=failover_s,
        enqueued_during=len(during),
        inline=len(inline_at),
        inline_span_s=inline_span_s,
    )
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    assert fallback_runs() - inline_before == len(inline_at)
    # The producer's breaker may still be cooling down from its last failure when the master is back.
    settings = envoi.settings
    budget_s = (
        settings.redis_breaker_cooldown_ms / 1000 + settings.redis_connect_timeout_s + COMMAND_TIMEOUT_S
    )
    # Inline only while no master could be written to (plus one breaker cool-down and call budget).
    assert inline_span_s <= failover_s + budget_s, (inline_span_s, failover_s)
    assert modes_after[-1] == "queued", "enqueue back on Redis after the failover"
    assert await dead_letter_count(envoi) == 0
    assert "Redis connection lost" in worker.output()
    assert worker.process.poll() is None, worker.output()
