"""Small shared marks for processes that must agree without a database: a value to remember, and a gate
that one process at a time may pass per interval (the dead-letter alerts use both)."""

from __future__ import annotations

from envoi.queue.redis_backend import RedisBackend, RedisDoor, text


class Marks:
    """Named marks under `envoi:{prefix}:alerts:` (see `envoi.queue.keys`). Each call raises
    `QueueUnavailableError` when Redis cannot be asked."""

    def __init__(self, door: RedisDoor) -> None:
        self._door = door

    async def get(self, name: str) -> str | None:
        async def get_on(redis: RedisBackend) -> str | None:
            return text(await redis.client.get(redis.keys.alerts(name)))

        return await self._door(get_on)

    async def set(self, name: str, value: str, *, only_if_absent: bool = False) -> bool:
        async def set_on(redis: RedisBackend) -> bool:
            return bool(await redis.client.set(redis.keys.alerts(name), value, nx=only_if_absent))

        return await self._door(set_on)

    async def pass_gate(self, name: str, *, interval_s: int) -> bool:
        """True for the first caller in `interval_s` seconds (`SET NX EX`), False for the others."""

        async def gate_on(redis: RedisBackend) -> bool:
            return bool(await redis.client.set(redis.keys.alerts(name), "1", nx=True, ex=interval_s))

        return await self._door(gate_on)
