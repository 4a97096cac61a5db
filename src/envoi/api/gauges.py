"""Gauges computed when /metrics is scraped: queue depth per state and dead letters per status."""

from __future__ import annotations

from prometheus_client import Gauge

from envoi.dead_letters.service import FailedJobService
from envoi.queue.names import QUEUE_NAMES
from envoi.runtime import Envoi

QUEUE_JOBS = Gauge("envoi_queue_jobs", "Jobs per bullmq state, per queue", ["queue", "state"])
DEAD_LETTERS = Gauge("envoi_dead_letters", "Dead letters per status", ["status"])
FALLBACK_ACTIVE = Gauge("envoi_fallback_active", "1 when jobs run inline (queue disabled or Redis down)")


async def refresh(envoi: Envoi) -> None:
    # Cleared first: a state or status that has gone to nothing must not keep its last value.
    QUEUE_JOBS.clear()
    for queue in QUEUE_NAMES:
        counts = await envoi.queue.counts(queue)
        for state, count in (counts or {}).items():
            QUEUE_JOBS.labels(queue, state).set(count)
    DEAD_LETTERS.clear()
    for status, count in (await FailedJobService(db=envoi.db).count_by_status()).items():
        DEAD_LETTERS.labels(status).set(count)
    FALLBACK_ACTIVE.set(1 if envoi.queue.fallback_active else 0)
