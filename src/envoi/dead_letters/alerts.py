"""Dead-letter alerts: when new dead letters appear, POST one JSON summary to ALERT_WEBHOOK_URL, at most
once per ALERT_MIN_INTERVAL_S.

It runs beside each worker (a worker companion, checking every DLQ_RECONCILE_INTERVAL_S). Several
workers share two marks (`envoi.queue.marks`), so that they send one alert, not one each:

- `seen`: the highest dead-letter id already reported (ids are ULIDs: they sort by time);
- `gate`: passed by one worker per ALERT_MIN_INTERVAL_S, the one that sends.

A webhook that fails is logged and tried again after the interval; it never touches job processing.
The URL is never logged (chat webhooks carry their secret in it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from envoi.config import Settings
from envoi.dead_letters.results import DeadLetterSummary
from envoi.dead_letters.service import FailedJobService
from envoi.queue.marks import Marks

log = logging.getLogger("envoi.alerts")

WEBHOOK_TIMEOUT_S = 5.0


SEEN, GATE = "seen", "gate"


class DeadLetterAlerter:
    def __init__(self, *, settings: Settings, dead_letters: FailedJobService, marks: Marks) -> None:
        self.settings = settings
        self.dead_letters = dead_letters
        self.marks = marks

    async def run_forever(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Dead-letter alert check failed (%s); trying again later", type(exc).__name__)
            await asyncio.sleep(self.settings.dlq_reconcile_interval_s)  # the polling schedule

    async def check_once(self) -> bool:
        """Send an alert if new dead letters appeared and the gate is open; True when one was sent."""
        if self.settings.alert_webhook_url is None:
            return False
        seen = await self.marks.get(SEEN)
        if seen is None:
            # First run anywhere: history is not news. Only what fails from now on is reported.
            await self.marks.set(SEEN, await self.dead_letters.newest_id(), only_if_absent=True)
            return False
        summary = await self.dead_letters.summary_since(seen)
        if not summary.total:
            return False
        interval = max(1, round(self.settings.alert_min_interval_s))
        if not await self.marks.pass_gate(GATE, interval_s=interval):
            return False  # alerted recently: these rows go into the next summary
        if await self._post(summary):
            await self.marks.set(SEEN, summary.last_id)
            return True
        return False

    def payload(self, summary: DeadLetterSummary) -> dict[str, Any]:
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

    async def _post(self, summary: DeadLetterSummary) -> bool:
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
