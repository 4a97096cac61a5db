"""envoi's own Redis keys, laid out here and nowhere else.

bullmq's keys are `{REDIS_PREFIX}:{queue}:…` and are shared with Node producers. envoi's own keys live
under `envoi:{REDIS_PREFIX}:`, outside that space (no queue name can collide with them) and still
separate per deployment (two deployments on one Redis use two bullmq prefixes):

    envoi:{prefix}:workers                        sorted set: each worker process's last heartbeat
    envoi:{prefix}:alerts:seen                    the newest dead-letter id an alert reported
    envoi:{prefix}:alerts:gate                    SET NX EX: at most one alert per interval
    envoi:{prefix}:dlq:{queue}:seen               failures known to have a dead-letter row
    envoi:{prefix}:dlq:{queue}:reconciled         the reconciler's watermark
    envoi:{prefix}:recipients:{sha256}            one recipient's delayed and failed jobs (admin search)
    envoi:{prefix}:ratelimit:bucket:{name}        a send-rate bucket's next slot (GCRA, microseconds)
    envoi:{prefix}:ratelimit:stats                hash: throttled/refused/paused counts per provider

bullmq's own per-queue keys that envoi reads are named by bullmq (`Queue.toKey`), never here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnvoiKeys:
    root: str

    @classmethod
    def for_prefix(cls, redis_prefix: str) -> EnvoiKeys:
        return cls(f"envoi:{redis_prefix}")

    def workers(self) -> str:
        return f"{self.root}:workers"

    def alerts(self, name: str) -> str:
        return f"{self.root}:alerts:{name}"

    def dlq_seen(self, queue: str) -> str:
        return f"{self.root}:dlq:{queue}:seen"

    def dlq_watermark(self, queue: str) -> str:
        return f"{self.root}:dlq:{queue}:reconciled"

    def recipients(self, digest: str) -> str:
        # `digest` is already a SHA-256 (`envoi.queue.recipients.recipient_digest`): no address in clear.
        return f"{self.root}:recipients:{digest}"

    def rate_bucket(self, name: str) -> str:
        return f"{self.root}:ratelimit:bucket:{name}"

    def rate_stats(self) -> str:
        return f"{self.root}:ratelimit:stats"
