"""Dead-letter alerts: when new dead letters appear, POST one JSON summary to ALERT_WEBHOOK_URL, at most
once per ALERT_MIN_INTERVAL_S.

It runs beside each worker (a `Worker.companions` coroutine, checking every DLQ_RECONCILE_INTERVAL_S).
Several workers share two Redis keys under REDIS_PREFIX, so that they send one alert, not one each:

- `envoi:alerts:seen`: the highest dead-letter id already reported (ids are ULIDs: they sort by time);
- `envoi:alerts:gate`: `SET NX EX ALERT_MIN_INTERVAL_S`, taken by whoever sends.

A webhook that fails is logged and tried again after the interval; it never touches job processing.
The URL is never logged (chat webhooks carry their secret in it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, select

from envoi.db.models import FailedJob

if TYPE_CHECKING:
    from envoi.runtime import Envoi

log = logging.getLogger("envoi.alerts")

WEBHOOK_TIMEOUT_S = 5.0


@dataclass
class Summary:
    total: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)
    by_job_name: dict[str, int] = field(default_factory=dict)
    last_id: str = ""

    def add(self, queue: str, job_name: str, count: int, last_id: str) -> None:
        self.total += count
        self.by_queue[queue] = self.by_queue.get(queue, 0) + count
        self.by_job_name[job_name] = self.by_job_name.get(job_name, 0) + count
        self.last_id = max(self.last_id, last_id)


class DeadLetterAlerter:
    def __init__(self, envoi: Envoi) -> None:
        self.envoi = envoi
        self.settings = envoi.settings
        prefix = self.settings.redis_prefix
        self.seen_key = f"{prefix}:envoi:alerts:seen"
        self.gate_key = f"{prefix}:envoi:alerts:gate"

    @property
    def enabled(self) -> bool:
        return self.settings.alert_webhook_url is not None and self.envoi.queue.redis is not None

    async def run_forever(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Dead-letter alert check failed (%s); trying again later", type(exc).__name__)
            await asyncio.sleep(self.settings.dlq_reconcile_interval_s)  # the polling schedule

    async def _newest_id(self) -> str:
        async with self.envoi.db.session() as session:
            return str(await session.scalar(select(func.max(FailedJob.id))) or "")

    async def _since(self, seen: str) -> Summary:
        statement = (
            select(FailedJob.queue_name, FailedJob.job_name, func.count(), func.max(FailedJob.id))
            .where(FailedJob.id > seen)
            .group_by(FailedJob.queue_name, FailedJob.job_name)
        )
        summary = Summary()
        async with self.envoi.db.session() as session:
            for queue, job_name, count, last_id in await session.execute(statement):
                summary.add(queue, job_name, int(count), str(last_id))
        return summary

    async def check_once(self) -> bool:
        """Send an alert if new dead letters appeared and the gate is open; True when one was sent."""
        redis = self.envoi.queue.redis
        if not self.enabled or redis is None:
            return False
        client = redis.client
        seen = await client.get(self.seen_key)
        if seen is None:
            # First run anywhere: history is not news. Only what fails from now on is reported.
            await client.set(self.seen_key, await self._newest_id(), nx=True)
            return False
        summary = await self._since(str(seen))
        if not summary.total:
            return False
        interval = max(1, round(self.settings.alert_min_interval_s))
        if not await client.set(self.gate_key, "1", nx=True, ex=interval):
            return False  # alerted recently: these rows go into the next summary
        if await self._post(summary):
            await client.set(self.seen_key, summary.last_id)
            return True
        return False

    def payload(self, summary: Summary) -> dict[str, Any]:
        admin_url = self.settings.api_url.rstrip("/") + "/admin"
        queues = ", ".join(f"{name}: {count}" for name, count in sorted(summary.by_queue.items()))
        return {
            # `text` makes the body readable as is by Slack and Mattermost incoming webhooks.
            "text": f"envoi: {summary.total} new dead letter(s) ({queues}). {admin_url}",
            "event": "dead_letters",
            "total": summary.total,
            "byQueue": summary.by_queue,
            "byJobName": summary.by_job_name,
            "adminUrl": admin_url,
        }

    async def _post(self, summary: Summary) -> bool:
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as http:
                response = await http.post(str(self.settings.alert_webhook_url), json=self.payload(summary))
        except httpx.HTTPError as exc:
            log.warning("Dead-letter alert not delivered (%s)", type(exc).__name__)
            return False
        if response.is_error:
            log.warning("Dead-letter alert refused by the webhook (HTTP %d)", response.status_code)
            return False
        log.info("Dead-letter alert sent: %d new dead letter(s)", summary.total)
        return True


def companion(envoi: Envoi) -> Callable[[Sequence[str]], Callable[[], Coroutine[Any, Any, None]]]:
    """For `Envoi.worker_companions`: one alerter per worker process."""

    def make(_queues: Sequence[str]) -> Callable[[], Coroutine[Any, Any, None]]:
        return DeadLetterAlerter(envoi).run_forever

    return make


def install(envoi: Envoi) -> None:
    """Run the alerter beside every worker when ALERT_WEBHOOK_URL is set."""
    if envoi.settings.alert_webhook_url is not None:
        envoi.worker_companions.append(companion(envoi))
