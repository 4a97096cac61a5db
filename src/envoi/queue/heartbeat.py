"""Worker liveness in Redis: each worker process refreshes its member of one sorted set, scored with the
time of its last beat (`envoi:{prefix}:workers`, laid out with envoi's other keys in
`envoi.queue.keys`; members `{host}:{pid}`).

bullmq's own worker list (`Queue.getWorkers`, read from CLIENT LIST) shows a worker as long as its TCP
connections are open, which a hung process's still are, and CLIENT LIST may be refused by a managed
Redis. A beat says more: the worker's event loop runs and its own Redis client (the pool its jobs'
commands go through) answers.
`envoi worker --health` reads the beats of workers on its host (the container's probe).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from envoi.config import Settings
from envoi.queue.keys import EnvoiKeys
from envoi.queue.redis_backend import producer_client
from envoi.queue.service import REDIS_DOWN_ERRORS

#: A worker is alive when it beat within this many intervals.
MISSED_BEATS = 3
#: Members not refreshed for this long are removed (workers long gone).
FORGET_AFTER_S = 86_400


def heartbeat_key(prefix: str) -> str:
    return EnvoiKeys.for_prefix(prefix).workers()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat(client: Redis, prefix: str, name: str) -> None:
    now = time.time()
    key = heartbeat_key(prefix)
    await client.zadd(key, {name: now})
    await client.zremrangebyscore(key, "-inf", now - FORGET_AFTER_S)


async def forget(client: Redis, prefix: str, name: str) -> None:
    await client.zrem(heartbeat_key(prefix), name)


@dataclass(frozen=True, slots=True)
class Beat:
    name: str
    age_s: float


async def beats(client: Redis, prefix: str, *, host: str, interval_s: float) -> list[Beat]:
    """The workers of `host` that beat within MISSED_BEATS intervals, most recent first."""
    now = time.time()
    found = await client.zrangebyscore(
        heartbeat_key(prefix), now - MISSED_BEATS * interval_s, "+inf", withscores=True
    )
    alive = [
        Beat(str(name), max(0.0, now - float(score)))
        for name, score in cast("list[tuple[str, float]]", found)
    ]
    return sorted((b for b in alive if b.name.rpartition(":")[0] == host), key=lambda b: b.age_s)


async def health(settings: Settings) -> tuple[int, list[str]]:
    """`envoi worker --health`: 0 and the live workers of this host (their last heartbeat), or 1 and
    why not."""
    client = producer_client(settings)
    host = socket.gethostname()
    try:
        found = await beats(
            client, settings.redis_prefix, host=host, interval_s=settings.worker_heartbeat_interval_s
        )
    except REDIS_DOWN_ERRORS as exc:
        return 1, [f"envoi: Redis at {settings.redis} did not answer ({type(exc).__name__})"]
    finally:
        await client.aclose()
    if not found:
        window = MISSED_BEATS * settings.worker_heartbeat_interval_s
        return 1, [f"envoi: no worker on {host} has sent a heartbeat in the last {window:g}s"]
    return 0, [f"worker {b.name} alive (last heartbeat {b.age_s:.1f}s ago)" for b in found]
