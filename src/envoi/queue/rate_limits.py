"""Send-rate limits shared by every worker and process: GCRA in one Lua script, on the server's clock.

Each bucket (`twilio`, `twilio:+33612345678`, `resend`, ...) is one key holding its theoretical arrival
time (TAT, microseconds on Redis's `TIME`). `reserve()` books the next free slot of every bucket a send
needs, atomically: the slot is the latest TAT of them (or now), and each TAT moves one interval past it.
The caller sleeps until its slot. There is no burst allowance on top of the rate (GCRA with a tolerance
of zero), so slots are one interval apart and a one-second window never holds more than the rate.

`pause()` pushes buckets' TATs to now + `Retry-After` (never earlier): a provider's 429 stops every
worker, not only the one that saw it.

Why not a library: the well-kept ones (`limits`: fixed and moving windows; `throttled-py`: GCRA among
others) answer "allowed now or not"; a sender that must wait its turn needs a reservation across two
buckets (provider and sender) and a "not before" write, which is a dozen lines of Lua here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoi.queue.redis_backend import RedisBackend, RedisDoor, text

#: KEYS = bucket keys..., stats hash. ARGV = mode ("reserve" | "pause"), label, then for reserve:
#: max_wait_us, interval_us per bucket; for pause: pause_us.
#: Replies {granted (1/0), wait_us, slot_us}: for reserve, how long until the booked slot (granted) or
#: until the first free one (refused: over max_wait, nothing booked), and that slot on the server's
#: clock; for pause, {1, 0, end of the pause}.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS - 1
local stats = KEYS[#KEYS]
local label = ARGV[2]
if ARGV[1] == 'pause' then
  local until_us = now + tonumber(ARGV[3])
  for i = 1, n do
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if until_us > tat then
      redis.call('SET', KEYS[i], string.format('%.0f', until_us), 'PX', math.ceil((until_us - now) / 1000) + 60000)
    end
  end
  redis.call('HINCRBY', stats, 'paused:' .. label, 1)
  return {1, 0, string.format('%.0f', until_us)}
end
local max_wait = tonumber(ARGV[3])
local slot = now
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat > slot then slot = tat end
end
local wait = slot - now
if wait > max_wait then
  redis.call('HINCRBY', stats, 'refused:' .. label, 1)
  return {0, string.format('%.0f', wait), string.format('%.0f', slot)}
end
for i = 1, n do
  local tat = slot + tonumber(ARGV[3 + i])
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 60000)
end
if wait > 0 then redis.call('HINCRBY', stats, 'throttled:' .. label, 1) end
return {1, string.format('%.0f', wait), string.format('%.0f', slot)}
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    #: True when a slot is booked; False when the first free one is beyond `max_wait_s` (nothing booked).
    granted: bool
    #: Seconds from now until the slot (booked or first free).
    wait_s: float
    #: The slot on the Redis server's clock (seconds since the epoch): comparable across workers.
    slot_s: float


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    #: Sends per second; 0 means unlimited (the bucket still honours a pause).
    rate: float

    @property
    def interval_us(self) -> int:
        return round(1_000_000 / self.rate) if self.rate > 0 else 0


class RateLimiter:
    """Buckets under `envoi:{prefix}:ratelimit:` (see `envoi.queue.keys`). Each call raises
    `QueueUnavailableError` when Redis cannot be asked (the caller then sends unthrottled)."""

    def __init__(self, door: RedisDoor) -> None:
        self._door = door

    async def reserve(self, buckets: Sequence[Bucket], *, label: str, max_wait_s: float) -> Reservation:
        async def reserve_on(redis: RedisBackend) -> Reservation:
            keys = [redis.keys.rate_bucket(b.name) for b in buckets] + [redis.keys.rate_stats()]
            args = ["reserve", label, str(round(max_wait_s * 1_000_000))]
            args += [str(b.interval_us) for b in buckets]
            granted, wait_us, slot_us = await redis.client.eval(GCRA_SCRIPT, len(keys), *keys, *args)
            return Reservation(
                granted=bool(int(granted)), wait_s=int(wait_us) / 1_000_000, slot_s=int(slot_us) / 1_000_000
            )

        return await self._door(reserve_on)

    async def pause(self, bucket_names: Sequence[str], *, label: str, seconds: float) -> None:
        """No send through these buckets before now + `seconds` (a provider's `Retry-After`)."""

        async def pause_on(redis: RedisBackend) -> None:
            keys = [redis.keys.rate_bucket(name) for name in bucket_names] + [redis.keys.rate_stats()]
            await redis.client.eval(
                GCRA_SCRIPT, len(keys), *keys, "pause", label, str(round(seconds * 1_000_000))
            )

        return await self._door(pause_on)

    async def stats(self) -> dict[str, int]:
        """Counts since the keys were created: `throttled:{provider}` (sends that waited their slot),
        `refused:{provider}` (slots beyond the longest wait), `paused:{provider}` (429s honoured)."""

        async def stats_on(redis: RedisBackend) -> dict[str, int]:
            raw = await redis.client.hgetall(redis.keys.rate_stats())
            return {str(text(k)): int(v) for k, v in raw.items()}

        return await self._door(stats_on)
