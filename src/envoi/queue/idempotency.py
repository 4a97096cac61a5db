"""HTTP Idempotency-Key: the first request's job id, kept in Redis for a day.

`SET key job_id NX EX 86400` claims the key atomically: two concurrent requests with the same key cannot
both enqueue. When Redis cannot be asked (queue disabled or down) the claim is "unchecked"; the key
still travels in the job's `metadata.idempotencyKey`, and the delivery ledger keeps a second run from
sending again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from envoi.errors import QueueUnavailableError
from envoi.queue.redis_backend import RedisBackend, RedisDoor, text

log = logging.getLogger("envoi.queue")

#: How long a key is remembered.
TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class KeyClaim:
    #: "new": this request owns the key; "seen": an earlier one did; "unchecked": Redis unavailable.
    outcome: Literal["new", "seen", "unchecked"]
    job_id: str


class IdempotencyKeys:
    def __init__(self, door: RedisDoor) -> None:
        self._door = door

    async def claim(self, scope: str, key: str, job_id: str) -> KeyClaim:
        async def claim_on(redis: RedisBackend) -> str | None:
            name = redis.keys.idempotency(scope, key)
            if await redis.client.set(name, job_id, nx=True, ex=TTL_S):
                return None
            existing = text(await redis.client.get(name))
            # Expired between SET and GET: nobody holds it any more, so claim it now.
            if existing is None and await redis.client.set(name, job_id, nx=True, ex=TTL_S):
                return None
            return existing or job_id

        try:
            existing = await self._door(claim_on)
        except QueueUnavailableError as exc:
            log.warning("Idempotency keys unavailable (%s): relying on the ledger", exc)
            return KeyClaim("unchecked", job_id)
        return KeyClaim("new", job_id) if existing is None else KeyClaim("seen", existing)

    async def release(self, scope: str, key: str) -> None:
        """Forget a key whose job could not be enqueued, so that the caller may try again."""

        async def release_on(redis: RedisBackend) -> None:
            await redis.client.delete(redis.keys.idempotency(scope, key))

        try:
            await self._door(release_on)
        except QueueUnavailableError:
            log.warning("Could not release an idempotency key")
