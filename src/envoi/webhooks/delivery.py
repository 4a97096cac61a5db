"""The `DELIVER_WEBHOOK` handler: sign, POST, record the attempt, decide.

    2xx                       delivered; the endpoint's failure streak ends
    410 Gone                  the endpoint is disabled; the job fails for good (dead letter)
    address refused (SSRF)    the job fails for good (dead letter); the endpoint stays as it is
    anything else             TransientDeliveryError: retried with backoff (`webhook_job_options`),
                              after the receiver's Retry-After when it asks for longer
    failing for WEBHOOK_DISABLE_AFTER
                              the endpoint is disabled at its next failure, and that job's dead
                              letter says so

Every attempt is a `webhook_attempts` row. Redirects are not followed (a 3xx is a failure), the answer's
body is read up to RESPONSE_CAP_BYTES, and the whole attempt is bounded by WEBHOOK_TIMEOUT_S. The
secret is read from the database at each attempt, never logged, never in an error; neither is the URL
(it may carry a token): log lines and errors name the endpoint by id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import update

from envoi.config import Settings
from envoi.db.models import WebhookAttempt, WebhookEndpoint
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.webhooks.jobs import DELIVER_WEBHOOK, DeliverWebhookJob
from envoi.webhooks.safety import UnsafeUrlError
from envoi.webhooks.signing import signature_header

log = logging.getLogger("envoi.webhooks")

CHANNEL = "webhook"
#: How much of an answer is read (and kept, in part, as the attempt's error).
RESPONSE_CAP_BYTES = 4096
ERROR_EXCERPT_CHARS = 300
#: A Retry-After longer than this is not honoured as asked (the attempts would outlive the endpoint).
RETRY_AFTER_MAX_S = 6 * 3600


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    duration_ms: int
    error: str | None = None
    retry_after: float | None = None
    #: The address check refused the connection.
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation overlap lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def body_bytes(payload: dict[str, Any]) -> bytes:
    """Compact JSON: what is signed is exactly what is sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) in seconds, capped; None when absent or bad."""
    if not value:
        return None
    try:
        seconds = (
            float(value)
            if value.strip().isdigit()
            else (parsedate_to_datetime(value) - utcnow()).total_seconds()
        )
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(seconds, 0), RETRY_AFTER_MAX_S) or None


def human(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}"
    return f"{seconds:g} s"


class WebhookDelivery:
    def __init__(self, *, db: Database, settings: Settings, http: httpx.AsyncClient) -> None:
        self.db = db
        self.settings = settings
        self.http = http

    def register(self, registry: HandlerRegistry) -> None:
        registry.register(DELIVER_WEBHOOK, self.deliver, model=DeliverWebhookJob)

    async def deliver(self, job: DeliverWebhookJob, context: JobContext) -> dict[str, Any]:
        async with self.db.session() as session:
            endpoint = await session.get(WebhookEndpoint, job.endpoint_id)
        if endpoint is None:
            log.info("Webhook %s not sent: endpoint %s was deleted", job.event_id, job.endpoint_id)
            return {"status": "skipped", "reason": "endpoint deleted"}
        if not endpoint.enabled:
            raise PermanentDeliveryError(
                f"Webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}): "
                f"event {job.event_id} not sent",
                channel=CHANNEL,
                code="ENDPOINT_DISABLED",
            )
        body = body_bytes(job.payload)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": job.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                signing_secrets(endpoint, utcnow()), job.event_id, timestamp, body
            ),
        }
        outcome = await self._post(endpoint.url, body, headers)
        log.info(
            "Webhook %s (%s) to endpoint %s, attempt %d: %s in %d ms",
            job.event_id,
            job.type,
            endpoint.id,
            context.attempt,
            f"HTTP {outcome.status_code}" if outcome.status_code is not None else outcome.error,
            outcome.duration_ms,
        )
        return await self._conclude(endpoint, job, outcome)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        timeout = self.settings.webhook_timeout_s
        try:
            # httpx's timeout bounds each step; this bounds the attempt (a slow drip of bytes included).
            async with asyncio.timeout(timeout):
                async with self.http.stream("POST", url, content=body, headers=headers) as response:
                    excerpt = await _read_capped(response)
        except UnsafeUrlError as exc:
            return Outcome(None, elapsed(), f"Address refused: {exc.reason}", refused=True)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(None, elapsed(), f"No answer within {timeout:g} s (WEBHOOK_TIMEOUT_S)")
        except httpx.HTTPError as exc:
            message = f"{type(exc).__name__}: {exc}".replace(url, "<endpoint url>")
            return Outcome(None, elapsed(), message)
        status = response.status_code
        error = None
        if not 200 <= status < 300:
            text = " ".join(excerpt.decode("utf-8", errors="replace").split())[:ERROR_EXCERPT_CHARS]
            error = f"HTTP {status}" + (f": {text}" if text else "")
        return Outcome(status, elapsed(), error, retry_after_s(response.headers.get("retry-after")))

    async def _conclude(
        self, endpoint: WebhookEndpoint, job: DeliverWebhookJob, outcome: Outcome
    ) -> dict[str, Any]:
        now = utcnow()
        disabled_reason: str | None = None
        async with self.db.session() as session:
            session.add(
                WebhookAttempt(
                    endpoint_id=endpoint.id,
                    event_id=job.event_id,
                    event_type=job.type,
                    status_code=outcome.status_code,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error,
                    created_at=now,
                )
            )
            this = WebhookEndpoint.id == endpoint.id
            if outcome.succeeded:
                await session.execute(
                    update(WebhookEndpoint)
                    .where(this, WebhookEndpoint.failing_since.is_not(None))
                    .values(failing_since=None)
                )
            elif outcome.status_code == 410:
                disabled_reason = "the endpoint answered 410 Gone"
                await session.execute(
                    update(WebhookEndpoint).where(this).values(enabled=False, disabled_reason=disabled_reason)
                )
            elif not outcome.refused:
                await session.execute(
                    update(WebhookEndpoint)
                    .where(this, WebhookEndpoint.failing_since.is_(None))
                    .values(failing_since=now)
                )
                since = endpoint.failing_since or now
                limit = self.settings.webhook_disable_after
                if now - since >= limit:
                    reason = (
                        f"no 2xx since {since:%Y-%m-%d %H:%M:%S} UTC (WEBHOOK_DISABLE_AFTER {human(limit)})"
                    )
                    result = await session.execute(
                        update(WebhookEndpoint)
                        .where(
                            this,
                            WebhookEndpoint.enabled.is_(True),
                            WebhookEndpoint.failing_since <= now - limit,
                        )
                        .values(enabled=False, disabled_reason=reason)
                    )
                    if getattr(result, "rowcount", 0):
                        disabled_reason = reason
        if outcome.succeeded:
            return {
                "status": "delivered",
                "statusCode": outcome.status_code,
                "durationMs": outcome.duration_ms,
            }
        error = outcome.error or "failed"
        if disabled_reason is not None:
            log.warning("Webhook endpoint %s disabled: %s", endpoint.id, disabled_reason)
            raise PermanentDeliveryError(
                f"Webhook endpoint {endpoint.id} disabled: {disabled_reason}. Last attempt: {error}",
                channel=CHANNEL,
                code="ENDPOINT_DISABLED",
            )
        if outcome.refused:
            raise PermanentDeliveryError(
                f"Webhook endpoint {endpoint.id}: {error}", channel=CHANNEL, code="ADDRESS_REFUSED"
            )
        code = str(outcome.status_code) if outcome.status_code is not None else "NO_ANSWER"
        raise TransientDeliveryError(
            f"Webhook endpoint {endpoint.id}: {error}",
            channel=CHANNEL,
            code=code,
            retry_after=outcome.retry_after,
        )


async def _read_capped(response: httpx.Response) -> bytes:
    """At most RESPONSE_CAP_BYTES of the answer (raw: a compressed bomb is not inflated)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_CAP_BYTES:
            break
    return b"".join(chunks)[:RESPONSE_CAP_BYTES]
