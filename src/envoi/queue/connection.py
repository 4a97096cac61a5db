"""The worker's Redis connections: they notice a dead connection, reconnect by themselves, and say so.

bullmq builds two clients from the dict it is given (one blocks on BZPOPMIN waiting for jobs), each with
its own retry policy: 20 retries with a backoff up to 20 s (about 350 s before a command gives up), and
no way to pass another through the dict. `install_retry` replaces it on both clients once built:

- `WORKER_SOCKET_TIMEOUT_S` bounds every read: a connection that went silent (a failover, a NAT that
  forgot the flow, a proxy that stopped forwarding) raises a timeout instead of waiting forever. It is
  longer than the longest blocking wait bullmq asks for (`BULLMQ_LONGEST_BLOCK_S`), so that a wait for
  jobs is never cut;
- a failed command is retried on a new connection a few times within a few seconds (`RETRIES`), then
  raised to bullmq, whose worker loop tries again after `WORKER_RUN_RETRY_DELAY_MS`;
- the first failure of an outage and the recovery are logged at WARNING, once each (`ConnectionWatch`).

`new_client` makes every client envoi opens: to the one server of REDIS_URL, or, with REDIS_SENTINELS,
to the master the sentinels name (redis-py's `Sentinel.master_for`): each new connection asks them
again, so a client follows a failover once its connections to the old master have failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Connection, Redis, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.utils import HIREDIS_AVAILABLE

from envoi.config import RedisTarget

log = logging.getLogger("envoi.worker")

T = TypeVar("T")

#: The longest bullmq's worker blocks on its blocking connection: its `maximumBlockTimeout` (a wait for
#: a delayed job), and WORKER_DRAIN_DELAY_S at most (the setting is capped at it).
BULLMQ_LONGEST_BLOCK_S = 10.0
#: A read that takes longer means a dead connection. Applied to both clients: no worker command is slow.
WORKER_SOCKET_TIMEOUT_S = BULLMQ_LONGEST_BLOCK_S + 3.0
#: A failed command is tried again on a new connection this many times, 0.1 s, 0.2 s, 0.4 s apart...
RETRIES, BACKOFF_BASE_S, BACKOFF_CAP_S = 3, 0.1, 1.0
#: bullmq's worker loop waits this long after a fetch failed on a connection error (its default: 15 s).
WORKER_RUN_RETRY_DELAY_MS = 1000


class ConnectionWatch:
    """Logs the first failure of an outage and the recovery, at WARNING; nothing in between."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None

    def failed(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(
                "Redis connection lost (%s): %s; reconnecting", self.name, error or type(error).__name__
            )

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.warning(
                "Redis connection restored (%s) after %.1fs", self.name, time.monotonic() - self.down_since
            )
            self.down_since = None


class WatchedRetry(Retry):
    def __init__(self, watch: ConnectionWatch) -> None:
        super().__init__(
            ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S),
            RETRIES,
            supported_errors=(ConnectionError, TimeoutError, BusyLoadingError),
        )
        self.watch = watch

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        async def noted(error: Exception, *count: int) -> Any:
            self.watch.failed(error)
            return await fail(error, *count)

        try:
            result = await super().call_with_retry(do, noted, is_retryable, with_failure_count)
        except (ConnectionError, TimeoutError, OSError) as error:
            self.watch.failed(error)
            raise
        self.watch.succeeded()
        return result


def install_retry(client: Redis, name: str) -> None:
    """Give one of bullmq's clients envoi's retry policy (see the module's docstring), and hiredis's
    packing (`pack_with_hiredis`)."""
    client.set_retry(WatchedRetry(ConnectionWatch(name)))
    pack_with_hiredis(client)


class _HiredisPacking:
    """Commands packed by hiredis (C), as redis-py's synchronous connections do, where its asyncio ones
    pack in Python: a fifth of the CPU time of an enqueue, most of it in the 13 arguments of bullmq's
    add script, and a tenth of a worker's on no-op jobs (docs/benchmarks.md). The bytes on the wire are
    the same."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = self._packer.pack(*args)
        return packed


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


#: redis-py's connection classes and their hiredis-packing counterparts (none without hiredis).
HIREDIS_PACKING: dict[type[Any], type[Any]] = (
    {Connection: HiredisConnection, SSLConnection: HiredisSSLConnection} if HIREDIS_AVAILABLE else {}
)


def pack_with_hiredis(client: Redis) -> None:
    """Have `client`'s new connections pack commands with hiredis (Sentinel's own connection class, and
    any without hiredis installed, are left as they are). Before its first command: the connections
    already open keep their class."""
    pool = client.connection_pool
    pool.connection_class = HIREDIS_PACKING.get(pool.connection_class, pool.connection_class)


def new_client(target: RedisTarget, *, retry: Retry | None = None, **kwargs: Any) -> Redis:
    """A client for `target`; `kwargs` are `RedisTarget.connection_kwargs` (and `decode_responses`)."""
    if not target.sentinels:
        return Redis(**kwargs) if retry is None else Redis(retry=retry, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("host", "port")}
    # The sentinels are asked with the same bounds as the master; they take no password of envoi's.
    asked = {"socket_connect_timeout": kwargs.get("socket_connect_timeout")}
    asked["socket_timeout"] = kwargs.get("socket_timeout") or asked["socket_connect_timeout"]
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=asked)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(str(target.sentinel_master), **kwargs)
    if retry is not None:
        client.set_retry(retry)
    return client
