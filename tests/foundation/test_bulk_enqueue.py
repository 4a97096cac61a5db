"""`enqueue_many` (bullmq's addBulk, one MULTI/EXEC per chunk) and the coalescing of concurrent single
enqueues, against real Redis: ids in order, jobs a worker runs, the checks of `enqueue` per item, and
the inline fallback per job when Redis is disabled, or stops between two chunks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job
from pydantic import BaseModel
from redis.exceptions import DataError

from envoi.embedded_redis import EmbeddedRedis
from envoi.errors import InvalidJobDataError
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.queue.base import CHUNK_SIZE
from envoi.queue.connection import HiredisConnection
from envoi.runtime import Envoi
from tests.fixtures.proxy import TcpProxy
from tests.helpers import bull_queue, eventually


class Ping(BaseModel):
    n: int
    note: str | None = None


def recording_registry(*, fail: set[int] | None = None) -> tuple[HandlerRegistry, list[JobContext]]:
    """`PING {n}`, recording each run; the runs whose n is in `fail` raise."""
    registry = HandlerRegistry()
    runs: list[JobContext] = []

    @registry.handler("PING", model=Ping)
    async def ping(data: Ping, context: JobContext) -> int:
        runs.append(context)
        if data.n in (fail or set()):
            raise RuntimeError(f"ping {data.n} failed")
        return data.n

    return registry, runs


async def job_data(envoi: Envoi, job_id: str) -> Any:
    job = await Job.fromId(bull_queue(envoi.queue, NOTIFICATIONS_QUEUE), job_id)
    return None if job is None else job.data


async def test_enqueue_many_answers_every_id_in_order_and_a_worker_runs_each_job_once(
    make_settings: Callable[..., Any], make_envoi: Any, start_worker: Any
) -> None:
    registry, runs = recording_registry()
    envoi: Envoi = make_envoi(make_settings(), registry=registry)
    count = 2 * CHUNK_SIZE + 7  # three chunks, the last one short
    results = await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "PING", [{"n": n} for n in range(count)])
    assert [r.mode for r in results] == ["queued"] * count
    assert len({r.job_id for r in results}) == count
    for n in (0, CHUNK_SIZE - 1, CHUNK_SIZE, count - 1):
        assert await job_data(envoi, results[n].job_id) == {"n": n}
    await start_worker(envoi, concurrency=50)
    await eventually(lambda: len(runs) >= count, timeout=60, message="every job run")
    assert sorted(int(run.data["n"]) for run in runs) == list(range(count))
    assert {run.job_id: int(run.data["n"]) for run in runs} == {r.job_id: n for n, r in enumerate(results)}


async def test_enqueue_many_keeps_the_given_ids_and_options(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, _ = recording_registry()
    envoi: Envoi = make_envoi(make_settings(job_backoff_delay_ms=30000), registry=registry)
    ids = [f"bulk-{n}" for n in range(3)]
    results = await envoi.queue.enqueue_many(
        NOTIFICATIONS_QUEUE, "PING", [{"n": n} for n in range(3)], job_ids=ids, delay=60, attempts=2
    )
    assert [r.job_id for r in results] == ids
    job = await Job.fromId(bull_queue(envoi.queue, NOTIFICATIONS_QUEUE), "bulk-1")
    assert job is not None and job.data == {"n": 1}
    assert (job.opts["attempts"], job.opts["delay"], job.opts["removeOnFail"]) == (2, 60000, False)
    assert job.opts["backoff"] == {"type": "exponential", "delay": 30000}
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None and counts["delayed"] == 3


async def test_every_item_is_checked_before_any_is_added_and_each_bad_one_is_named_by_its_index(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, runs = recording_registry()
    envoi: Envoi = make_envoi(make_settings(max_job_data_bytes=200), registry=registry)
    items: list[Any] = [{"n": 0}, {"n": "x"}, {"n": 2}, "not an object", {"n": 4, "note": "p" * 300}]
    with pytest.raises(InvalidJobDataError) as refused:
        await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "PING", items)
    assert set(refused.value.fields) == {"items.1.n", "items.3", "items.4.data"}
    assert "200 bytes" in refused.value.fields["items.4.data"]
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None and sum(counts.values()) == 0
    assert runs == []


async def test_hostile_items_are_refused_as_enqueue_refuses_them(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_settings(), registry=HandlerRegistry())
    with pytest.raises(ValueError, match="contains ':'"):
        await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "ANY", [{}, {}], job_ids=["ok", "a:b"])
    with pytest.raises(ValueError, match="2 job ids for 1 items"):
        await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "ANY", [{}], job_ids=["a", "b"])
    with pytest.raises(ValueError, match="unknown queue"):
        await envoi.queue.enqueue_many("nope", "ANY", [{}])
    # NaN is not JSON: refused with the item's index, not half-way through a bulk add.
    with pytest.raises(InvalidJobDataError) as refused:
        await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "ANY", [{"x": 1}, {"x": float("nan")}])
    assert set(refused.value.fields) == {"items.1.data"}
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None and sum(counts.values()) == 0
    assert await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "ANY", []) == []


async def test_with_the_queue_disabled_each_item_runs_inline_and_one_failure_is_its_own(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, runs = recording_registry(fail={1})
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=registry)
    results = await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "PING", [{"n": n} for n in range(4)])
    assert [r.mode for r in results] == ["sync"] * 4
    assert [r.succeeded for r in results] == [True, False, True, True]
    assert [r.result for r in results] == [0, None, 2, 3]
    assert [run.data["n"] for run in runs] == [0, 1, 2, 3]


class StopRedisAfterFirstChunk(logging.Handler):
    """Stops the Redis the first time `QueueService` logs a bulk add it made: between two chunks."""

    def __init__(self, redis: EmbeddedRedis) -> None:
        super().__init__(logging.DEBUG)
        self.redis = redis
        self.stopped = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.stopped and record.getMessage().startswith("Bulk add:"):
            self.stopped = True
            self.redis.stop()  # SIGTERM: Redis writes its append-only file and exits


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    redis = EmbeddedRedis(tmp_path / "redis", persist=True)
    redis.start()
    yield redis
    redis.stop()


async def test_redis_stopped_between_two_chunks_loses_and_repeats_nothing(
    private_redis: EmbeddedRedis, make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, runs = recording_registry()
    envoi: Envoi = make_envoi(
        make_settings(redis_url=private_redis.url, redis_breaker_cooldown_ms=3_600_000), registry=registry
    )
    stopper = StopRedisAfterFirstChunk(private_redis)
    logger = logging.getLogger("envoi.queue")
    level = logger.level
    logger.addHandler(stopper)
    logger.setLevel(logging.DEBUG)
    try:
        count = 2 * CHUNK_SIZE + 3
        results = await envoi.queue.enqueue_many(
            NOTIFICATIONS_QUEUE, "PING", [{"n": n} for n in range(count)]
        )
    finally:
        logger.removeHandler(stopper)
        logger.setLevel(level)
    assert stopper.stopped
    assert [r.mode for r in results] == ["queued"] * CHUNK_SIZE + ["sync"] * (count - CHUNK_SIZE)
    assert all(r.succeeded for r in results[CHUNK_SIZE:])
    # Each job after the first chunk ran inline once, in order; none of the first chunk did.
    assert [run.data["n"] for run in runs] == list(range(CHUNK_SIZE, count))

    private_redis.start()  # from its append-only file: exactly the first chunk is in the queue
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        prefix = envoi.settings.redis_prefix
        waiting = await client.lrange(f"{prefix}:{NOTIFICATIONS_QUEUE}:wait", 0, -1)
        assert sorted(w.decode() for w in waiting) == sorted(r.job_id for r in results[:CHUNK_SIZE])
        data = await client.hget(f"{prefix}:{NOTIFICATIONS_QUEUE}:{results[7].job_id}", "data")
        assert data == b'{"n":7}'
    finally:
        await client.aclose()


# --- coalescing of concurrent single enqueues --------------------------------------------------------


async def command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def round_trips(client: aioredis.Redis, before: dict[str, int]) -> dict[str, int]:
    after = await command_calls(client)
    # A job added alone is one EVALSHA; a bulk add is a SCRIPT EXISTS, then MULTI, one EVALSHA per job
    # and EXEC sent together (redis-py's pipeline): two round trips, whatever the number of jobs.
    names = ("evalsha", "multi", "exec", "script|exists", "script|load", "eval")
    return {name: after.get(name, 0) - before.get(name, 0) for name in names}


async def test_fifty_concurrent_enqueues_go_out_together_and_each_caller_gets_its_own_job(
    private_redis: EmbeddedRedis, make_settings: Callable[..., Any], make_envoi: Any, start_worker: Any
) -> None:
    registry, runs = recording_registry()
    envoi: Envoi = make_envoi(make_settings(redis_url=private_redis.url), registry=registry)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": -1})  # scripts loaded, pool connected
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    before = await command_calls(client)

    results = await asyncio.gather(
        *(envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": n}) for n in range(50))
    )
    trips = await round_trips(client, before)
    await client.aclose()
    # The first caller's job goes alone at once; the 49 others together (SCRIPT EXISTS, then one
    # transaction): three round trips, not fifty.
    assert trips == {"evalsha": 50, "multi": 1, "exec": 1, "script|exists": 1, "script|load": 0, "eval": 0}
    assert len({r.job_id for r in results}) == 50
    for n in (0, 17, 49):
        assert await job_data(envoi, results[n].job_id) == {"n": n}
    await start_worker(envoi)
    await eventually(lambda: len(runs) == 51, timeout=30, message="every job run")
    assert {run.job_id: run.data["n"] for run in runs if run.data["n"] >= 0} == {
        r.job_id: n for n, r in enumerate(results)
    }


async def test_one_enqueue_at_a_time_is_one_script_call(
    private_redis: EmbeddedRedis, make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_settings(redis_url=private_redis.url), registry=HandlerRegistry())
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {})
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    before = await command_calls(client)
    for n in range(5):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": n})
    trips = await round_trips(client, before)
    await client.aclose()
    assert trips == {"evalsha": 5, "multi": 0, "exec": 0, "script|exists": 0, "script|load": 0, "eval": 0}


async def test_a_job_bullmq_cannot_encode_fails_alone_and_the_others_are_added(
    private_redis: EmbeddedRedis, make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_settings(redis_url=private_redis.url), registry=HandlerRegistry())

    async def one(n: int) -> Any:
        # An option msgpack cannot pack: bullmq raises while it builds the batch, before sending it.
        options = {"priority": object()} if n == 3 else {}
        return await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": n}, **options)

    results = await asyncio.gather(*(one(n) for n in range(6)), return_exceptions=True)
    assert isinstance(results[3], TypeError)
    added = [r for n, r in enumerate(results) if n != 3]
    assert all(getattr(r, "mode", None) == "queued" for r in added), results
    for n, result in enumerate(results):
        if n != 3:
            assert await job_data(envoi, result.job_id) == {"n": n}  # type: ignore[union-attr]
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None and counts["waiting"] == 5


async def test_concurrent_enqueues_with_redis_gone_each_run_inline_once(
    private_redis: EmbeddedRedis, make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, runs = recording_registry(fail={4})
    envoi: Envoi = make_envoi(
        make_settings(redis_url=private_redis.url, redis_breaker_cooldown_ms=3_600_000), registry=registry
    )
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": -1})
    private_redis.stop()
    results = await asyncio.gather(
        *(envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": n}) for n in range(20))
    )
    assert [r.mode for r in results] == ["sync"] * 20
    assert [r.succeeded for r in results] == [n != 4 for n in range(20)]
    assert sorted(run.data["n"] for run in runs) == list(range(20))
    assert [r.result for r in results] == [None if n == 4 else n for n in range(20)]


# --- the producer's connections ------------------------------------------------------------------------


def test_hiredis_packing_puts_the_same_bytes_on_the_wire_and_refuses_the_same_values() -> None:
    python, hiredis = aioredis.Connection(), HiredisConnection()
    # bullmq's add script: keys, msgpack bytes, JSON text with any Unicode, integers, a float.
    command = (
        "EVALSHA",
        "ab12",
        2,
        "p:q:wait",
        "p:q:id",
        b"\x93\xa1x\x00",
        '{"a":"é€😀"}',
        2**53 - 1,
        -3,
        0.1,
    )
    assert b"".join(hiredis.pack_command(*command)) == b"".join(python.pack_command(*command))
    assert b"".join(hiredis.pack_command("CONFIG GET", b"maxmemory")) == b"".join(
        python.pack_command("CONFIG GET", b"maxmemory")
    )
    for hostile in ("\ud800", None, object()):
        for connection in (python, hiredis):
            with pytest.raises((UnicodeEncodeError, DataError)):
                connection.pack_command("SET", "k", hostile)


async def test_the_producer_clients_pack_with_hiredis_and_only_the_adding_one_has_no_socket_timeout(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_settings(), registry=HandlerRegistry())
    backend = envoi.queue._redis
    assert backend is not None
    assert backend.client.connection_pool.connection_class is HiredisConnection
    assert backend.add_client.connection_pool.connection_class is HiredisConnection
    assert backend.client.connection_pool.connection_kwargs["socket_timeout"] == 2.0
    # Each add is bounded by asyncio.timeout instead (test_adds_on_connections_gone_silent_...).
    assert backend.add_client.connection_pool.connection_kwargs["socket_timeout"] is None


async def test_adds_on_connections_gone_silent_fall_back_within_their_budget(
    private_redis: EmbeddedRedis, make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, runs = recording_registry()
    with TcpProxy("127.0.0.1", private_redis.port) as proxy:
        settings = make_settings(
            redis_url=f"redis://127.0.0.1:{proxy.port}/0", redis_breaker_cooldown_ms=3_600_000
        )
        envoi: Envoi = make_envoi(settings, registry=registry)
        await asyncio.gather(*(envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": -n}) for n in range(3)))
        proxy.sever()  # the open connections go silent, never closed: no socket timeout on them
        budget = envoi.queue._redis.budget_s  # type: ignore[union-attr]
        started = time.monotonic()
        single, *together = await asyncio.gather(
            *(envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": n}) for n in range(3))
        )
        bulk = await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "PING", [{"n": 10}, {"n": 11}])
        elapsed = time.monotonic() - started
    assert [r.mode for r in [single, *together, *bulk]] == ["sync"] * 5
    assert sorted(run.data["n"] for run in runs) == [0, 1, 2, 10, 11]
    # The lone add and the batch wait side by side, each cut by asyncio.timeout at the budget; the
    # bulk add after them finds the breaker open and runs inline at once.
    assert elapsed < 2 * budget + 5, elapsed
