"""The worker completes a job and takes the next in one script call (`envoi.queue.fetch_next`), on the
bullmq versions that is tested with, without losing what bullmq's own loop guarantees: concurrency,
a paused queue, the order of the queue; on a private redis-server where script calls are counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from bullmq import Worker as BullWorker
from redis.asyncio import Redis

from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.embedded_redis import EmbeddedRedis
from envoi.queue.fetch_next import TESTED_BULLMQ_VERSIONS, FetchNextWorker, worker_class
from envoi.queue.inspect import JobNotFoundError
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.helpers import eventually


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The worker's loop does not depend on the database: SQLite only, not once per database."""
    url = f"sqlite:///{tmp_path / 'envoi.db'}"
    upgrade(url)
    return url


def test_the_installed_bullmq_is_a_tested_version() -> None:
    # A bullmq upgrade makes this fail: read its Worker.processJob against FetchNextWorker._run, run the
    # worker, crash and interop tests, then add the version to TESTED_BULLMQ_VERSIONS.
    assert version("bullmq") in TESTED_BULLMQ_VERSIONS
    assert worker_class() is FetchNextWorker


def test_an_untested_bullmq_version_gets_bullmqs_own_worker_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="envoi.worker"):
        assert worker_class("99.0.0") is BullWorker
    assert "bullmq 99.0.0 is not among the versions" in caplog.text


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own: its command statistics count only this test's calls."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis-fetch-next")) as url:
        yield url


async def _script_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


class Recorder:
    """A handler that counts the jobs running at once, and can hold them until released."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.running = 0
        self.most = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, _data: object, context: JobContext) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)  # let the other slots run too
        finally:
            self.running -= 1
        self.done.append(int(context.data["i"]))


@pytest.fixture
def make(make_settings: Callable[..., Settings], make_envoi: Any, private_redis: str) -> Callable[..., Any]:
    def build(recorder: Recorder) -> Envoi:
        registry = HandlerRegistry()
        registry.handler("RECORD")(recorder)
        settings = make_settings(redis_url=private_redis, worker_throughput_minutes=0)
        return make_envoi(settings, registry=registry)  # type: ignore[no-any-return]

    return build


@pytest.mark.parametrize("fetch_next", [True, False])
async def test_one_script_call_per_job_with_fetch_next_two_without(
    make: Callable[..., Envoi], start_worker: Any, private_redis: str, fetch_next: bool
) -> None:
    n = 200
    recorder = Recorder()
    envoi = make(recorder)
    for i in range(n):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "RECORD", {"i": i})
    client = Redis.from_url(private_redis)
    try:
        await client.config_resetstat()
        await start_worker(envoi, concurrency=10, fetch_next=fetch_next)
        await eventually(lambda: len(recorder.done) == n, timeout=30, message="every job done")
        calls = await _script_calls(client)
    finally:
        await client.aclose()
    # Per job: moveToFinished (and moveToActive without fetch-next); a few more for the slots' first
    # jobs, the empty queue at the end, lock renewals and the stalled check.
    if fetch_next:
        assert n <= calls < n * 1.25, calls
    else:
        assert calls >= 1.9 * n, calls
    assert sorted(recorder.done) == list(range(n))


async def test_fetch_next_keeps_the_concurrency_and_the_queues_order(
    make: Callable[..., Envoi], start_worker: Any
) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    envoi = make(recorder)
    for i in range(60):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "RECORD", {"i": i})
    await start_worker(envoi, concurrency=3)
    await eventually(lambda: recorder.running == 3, timeout=10, message="three jobs running")
    recorder.gate.set()
    await eventually(lambda: len(recorder.done) == 60, timeout=30, message="every job done")
    assert recorder.most == 3
    # Three slots, first in first out: no job finishes more than a few places from its rank.
    assert all(abs(rank - i) <= 3 for rank, i in enumerate(recorder.done)), recorder.done


async def test_a_paused_queue_stops_the_chain_of_fetched_jobs(
    make: Callable[..., Envoi], start_worker: Any
) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    envoi = make(recorder)
    first = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "RECORD", {"i": 0})
    await start_worker(envoi, concurrency=1)
    await eventually(lambda: recorder.running == 1, timeout=10, message="the first job running")
    assert await envoi.queue.inspector.set_paused(NOTIFICATIONS_QUEUE, True)
    second = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "RECORD", {"i": 1})
    recorder.gate.set()

    async def state(job_id: str) -> str:
        return (await envoi.queue.inspector.get(NOTIFICATIONS_QUEUE, job_id)).state

    async def first_done() -> bool:
        try:
            await state(first.job_id)
        except JobNotFoundError:  # completed, and removed (removeOnComplete)
            return True
        return False

    await eventually(first_done, timeout=10, message="the first job completed")
    # Its completion asked for the next job: the paused queue gave none.
    assert recorder.done == [0]
    assert await state(second.job_id) in ("waiting", "paused")
    await envoi.queue.inspector.set_paused(NOTIFICATIONS_QUEUE, False)
    await eventually(lambda: recorder.done == [0, 1], timeout=10, message="the second job after resume")


async def test_a_job_fetched_by_a_completion_is_locked_like_one_taken_by_bullmqs_loop(
    make: Callable[..., Envoi], start_worker: Any, private_redis: str, tmp_path: Path
) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    envoi = make(recorder)
    ids = [(await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "RECORD", {"i": i})).job_id for i in range(2)]
    worker = await start_worker(envoi, concurrency=1)
    await eventually(lambda: recorder.running == 1, timeout=10, message="the first job running")
    recorder.gate.set()
    recorder.gate = asyncio.Event()  # the second one (fetched by the first's completion) waits here
    await eventually(lambda: recorder.running == 1 and recorder.done == [0], timeout=10, message="job 2")
    bull = worker._workers[NOTIFICATIONS_QUEUE]
    [(job, token)] = list(bull.jobs)
    assert str(job.id) == ids[1]
    client = Redis.from_url(private_redis, decode_responses=True)
    try:
        lock = await client.get(f"{envoi.settings.redis_prefix}:{NOTIFICATIONS_QUEUE}:{job.id}:lock")
    finally:
        await client.aclose()
    assert lock == token
    recorder.gate.set()
    await eventually(lambda: recorder.done == [0, 1], timeout=10, message="the second job done")
