"""What envoi needs from the Redis server, checked when a worker or the API starts.

- `maxmemory-policy noeviction`: bullmq's keys must never be evicted; a full Redis must refuse writes
  (enqueue then runs jobs inline) rather than drop waiting jobs.
- persistence (an append-only file, or RDB snapshots): without it a restart loses every waiting and
  delayed job (a reminder due tomorrow).

Each unmet need is one WARNING line; nothing stops. A managed Redis that forbids `CONFIG` is asked
through `INFO` only, and what cannot be read is not reported.
"""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from envoi.queue.redis_backend import RedisBackend, RedisDoor

log = logging.getLogger("envoi.queue")


class ServerCheck:
    def __init__(self, door: RedisDoor) -> None:
        self._door = door

    async def warnings(self) -> list[str]:
        """One sentence per unmet need; `QueueUnavailableError` when Redis cannot be asked."""

        async def read(redis: RedisBackend) -> list[str]:
            found: list[str] = []
            memory = await redis.client.info("memory")
            policy = memory.get("maxmemory_policy")
            if policy is not None and policy != "noeviction":
                found.append(
                    f"Redis maxmemory-policy is {policy}: under memory pressure Redis may evict queued "
                    "jobs; set it to noeviction"
                )
            persistence = await redis.client.info("persistence")
            aof = str(persistence.get("aof_enabled", "")) == "1"
            if not aof and not await _rdb_snapshots(redis):
                found.append(
                    "Redis persistence is off (no append-only file, no RDB snapshots): a restart loses "
                    "every waiting and delayed job; set appendonly yes"
                )
            return found

        return await self._door(read)

    async def log_warnings(self) -> list[str]:
        found = await self.warnings()
        for warning in found:
            log.warning("%s", warning)
        return found


async def _rdb_snapshots(redis: RedisBackend) -> bool:
    """True when RDB snapshots are scheduled; True too when CONFIG is refused (managed services often
    forbid it, and snapshot themselves), so that nothing is reported on a guess."""
    try:
        config = await redis.client.config_get("save")
    except ResponseError:
        return True
    return bool(str(config.get("save", "")).strip())
