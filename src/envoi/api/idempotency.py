"""Idempotency-Key: the first request's job id, kept in Redis for a day.

`SET key job_id NX EX 86400` under REDIS_PREFIX claims the key atomically: two concurrent requests with
the same key cannot both enqueue. When Redis cannot be asked (queue disabled or down) the key is not
checked here; it still travels in the job's `metadata.idempotencyKey`, and the delivery ledger (unique
idempotency key per message) keeps a second run from sending again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

from envoi.queue.service import REDIS_DOWN_ERRORS, QueueService

log = logging.getLogger("envoi.api")

#: How long a key is remembered.
TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Claim:
    #: "new": this request owns the key; "seen": an earlier one did; "unchecked": Redis unavailable.
    outcome: Literal["new", "seen", "unchecked"]
    job_id: str


class IdempotencyStore:
    def __init__(self, queue: QueueService, *, prefix: str) -> None:
        self.queue = queue
        self.prefix = prefix

    def redis_key(self, scope: str, key: str) -> str:
        # Hashed: the caller's key is free text of any length.
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self.prefix}:envoi:idempotency:{scope}:{digest}"

    async def claim(self, scope: str, key: str, job_id: str) -> Claim:
        backend = self.queue.redis
        if backend is None or self.queue.fallback_active:
            return Claim("unchecked", job_id)
        name = self.redis_key(scope, key)
        try:
            if await backend.client.set(name, job_id, nx=True, ex=TTL_S):
                return Claim("new", job_id)
            existing = await backend.client.get(name)
        except REDIS_DOWN_ERRORS as exc:
            log.warning("Idempotency store unavailable (%s): relying on the ledger", type(exc).__name__)
            return Claim("unchecked", job_id)
        # Expired between SET and GET: a new claim is the honest answer.
        return Claim("seen", str(existing)) if existing else await self.claim(scope, key, job_id)

    async def release(self, scope: str, key: str) -> None:
        """Forget a key whose job could not be enqueued, so that the caller may try again."""
        backend = self.queue.redis
        if backend is None:
            return
        try:
            await backend.client.delete(self.redis_key(scope, key))
        except REDIS_DOWN_ERRORS:
            log.warning("Could not release an idempotency key")
