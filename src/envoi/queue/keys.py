"""envoi's own Redis keys, laid out here and nowhere else.

bullmq's keys are `{REDIS_PREFIX}:{queue}:…` and are shared with Node producers. envoi's own keys live
under `envoi:{REDIS_PREFIX}:`, outside that space (no queue name can collide with them) and still
separate per deployment (two deployments on one Redis use two bullmq prefixes):

    envoi:{prefix}:idempotency:{scope}:{sha256}   HTTP Idempotency-Key -> the first request's job id
    envoi:{prefix}:alerts:seen                    the newest dead-letter id an alert reported
    envoi:{prefix}:alerts:gate                    SET NX EX: at most one alert per interval
    envoi:{prefix}:dlq:{queue}:seen               failures known to have a dead-letter row
    envoi:{prefix}:dlq:{queue}:reconciled         the reconciler's watermark
    envoi:{prefix}:ratelimit:bucket:{name}        a send-rate bucket's next slot (GCRA, microseconds)
    envoi:{prefix}:ratelimit:stats                hash: throttled/refused/paused counts per provider
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnvoiKeys:
    root: str

    @classmethod
    def for_prefix(cls, redis_prefix: str) -> EnvoiKeys:
        return cls(f"envoi:{redis_prefix}")

    def idempotency(self, scope: str, key: str) -> str:
        # Hashed: the caller's key is free text of any length.
        return f"{self.root}:idempotency:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"

    def alerts(self, name: str) -> str:
        return f"{self.root}:alerts:{name}"

    def dlq_seen(self, queue: str) -> str:
        return f"{self.root}:dlq:{queue}:seen"

    def dlq_watermark(self, queue: str) -> str:
        return f"{self.root}:dlq:{queue}:reconciled"

    def rate_bucket(self, name: str) -> str:
        return f"{self.root}:ratelimit:bucket:{name}"

    def rate_stats(self) -> str:
        return f"{self.root}:ratelimit:stats"
