"""FailedJobService: pages, filters, retry (once), delete, stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from ulid import ULID

from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.dead_letters.service import (
    DeadLetterSummary,
    FailedJobFilters,
    FailedJobNotFoundError,
    FailedJobNotRetryableError,
    FailedJobService,
    row_as_dict,
)
from envoi.queue import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from envoi.runtime import Envoi
from tests.dead_letters.support import Jobs, failure, row_count, rows, until
from tests.helpers import bull_queue, eventually, job_state


async def seed(envoi: Envoi, count: int) -> None:
    """`count` rows: every third on the webhooks queue, every other one a SEND_SMS."""
    await SqlFailureRecorder(envoi.db).record_many(
        [
            failure(
                i,
                queue=WEBHOOKS_QUEUE if i % 3 == 0 else NOTIFICATIONS_QUEUE,
                job_name="SEND_SMS" if i % 2 else "SEND_EMAIL",
            )
            for i in range(count)
        ]
    )


async def test_pages_are_newest_first_and_cursor_walks_them_all(
    envoi_with_jobs: tuple[Envoi, Jobs],
) -> None:
    envoi, _ = envoi_with_jobs
    await seed(envoi, 120)
    service = envoi.dead_letters
    seen: list[str] = []
    cursor: str | None = None
    sizes = []
    while True:
        page = await service.list(limit=50, cursor=cursor)
        sizes.append(len(page.items))
        seen += [row.id for row in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [50, 50, 20]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 120


async def test_filters(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    envoi, _ = envoi_with_jobs
    await seed(envoi, 30)
    service = envoi.dead_letters
    webhooks = await service.list(queue_name=WEBHOOKS_QUEUE, limit=100)
    assert len(webhooks.items) == 10 and {r.queue_name for r in webhooks.items} == {WEBHOOKS_QUEUE}
    sms = await service.list(job_name="SEND_SMS", queue_name=NOTIFICATIONS_QUEUE, limit=100)
    assert {(r.job_name, r.queue_name) for r in sms.items} == {("SEND_SMS", NOTIFICATIONS_QUEUE)}
    assert len(sms.items) == 10
    assert len((await service.list(status="failed", limit=100)).items) == 30
    assert (await service.list(status="RETRIED")).items == []
    [found] = (await service.list(search="error 17")).items
    assert found.job_id == "17"
    assert [r.job_id for r in (await service.list(search="5")).items] == ["25", "15", "5"]
    assert (await service.list(search="100%")).items == []  # % is not a wildcard
    now = datetime.now(UTC)
    assert len((await service.list(since=now - timedelta(minutes=1), limit=100)).items) == 30
    assert (await service.list(until=now - timedelta(minutes=1))).items == []


async def test_bad_arguments_are_refused(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    service = envoi_with_jobs[0].dead_letters
    with pytest.raises(ValueError, match="unknown status"):
        await service.list(status="LOST")
    with pytest.raises(ValueError, match="invalid cursor"):
        await service.list(cursor="nope")
    with pytest.raises(ValueError, match="limit"):
        await service.list(limit=0)
    with pytest.raises(ValueError, match="timezone"):
        FailedJobFilters(since=datetime(2026, 1, 1))


async def test_get_delete_delete_many_and_stats(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    envoi, _ = envoi_with_jobs
    await seed(envoi, 30)
    service = envoi.dead_letters
    stats = await service.stats()
    assert stats.total == 30
    assert stats.by_queue == {WEBHOOKS_QUEUE: 10, NOTIFICATIONS_QUEUE: 20}
    assert stats.by_job_name == {"SEND_SMS": 15, "SEND_EMAIL": 15}
    assert stats.by_status == {"FAILED": 30, "RETRIED": 0, "RESOLVED": 0}
    [first, *_] = (await service.list()).items
    assert (await service.get(first.id)) is not None
    assert await service.delete(first.id) is True
    assert await service.delete(first.id) is False
    assert await service.get(first.id) is None
    progress: list[int] = []
    deleted = await service.delete_many(FailedJobFilters(queue_name=WEBHOOKS_QUEUE), progress=progress.append)
    assert deleted == sum(progress) == 10 - (first.queue_name == WEBHOOKS_QUEUE)
    assert await service.count(FailedJobFilters(queue_name=WEBHOOKS_QUEUE)) == 0
    assert await row_count(envoi) == 29 - deleted + 0


async def test_payload_is_masked_unless_revealed(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    envoi, _ = envoi_with_jobs
    await seed(envoi, 1)
    [row] = await rows(envoi)
    masked = row_as_dict(row)["job_data"]
    assert masked["to"] == "u***@example.com"
    assert masked["phone"].startswith("+33 6") and masked["phone"].endswith("78")
    assert "1234" not in masked["phone"].replace(" ", "")
    assert row_as_dict(row, reveal=True)["job_data"]["to"] == "user0@example.com"


async def _dead_letter(envoi: Envoi, jobs: Jobs, name: str = "SWITCH") -> Any:
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, name, {"to": "jane@example.com"}, attempts=2)
    [row] = await until(lambda: rows(envoi, status="FAILED"), timeout=15, message="a dead letter")
    return row


async def test_retry_delivers_once_the_fault_is_gone_and_only_once(
    envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    envoi, jobs = envoi_with_jobs
    await start_worker(envoi)
    row = await _dead_letter(envoi, jobs)
    assert len(jobs.named("SWITCH")) == 2
    jobs.broken = False
    service = envoi.dead_letters
    # Two operators press "retry" at the same moment: one job is enqueued.
    outcomes = await asyncio.gather(service.retry(row.id), service.retry(row.id), return_exceptions=True)
    retried = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, FailedJobNotRetryableError)]
    assert len(retried) == 1 and len(refused) == 1, outcomes
    assert retried[0].result == "queued" and retried[0].enqueued.job_id == f"dlq-retry-{row.id}"
    await eventually(lambda: len(jobs.named("SWITCH")) == 3, message="the retried job ran")
    retry_context = jobs.named("SWITCH")[-1]
    assert (retry_context.attempt, retry_context.max_attempts) == (1, 2)  # fresh attempts, same options
    assert retry_context.job_id == f"dlq-retry-{row.id}" != row.job_id
    assert retry_context.data == {"to": "jane@example.com"}
    [after] = await rows(envoi)
    assert (after.status, after.retried_job_id) == ("RETRIED", f"dlq-retry-{row.id}")
    with pytest.raises(FailedJobNotRetryableError):
        await service.retry(row.id)
    with pytest.raises(FailedJobNotFoundError):
        await service.retry("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    await until(
        lambda: _state_is(envoi, f"dlq-retry-{row.id}", "unknown"), message="the retried job completed"
    )
    assert len(jobs.named("SWITCH")) == 3


async def _state_is(envoi: Envoi, job_id: str, state: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == state


async def test_a_retried_job_that_fails_again_makes_a_new_row(
    envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    envoi, jobs = envoi_with_jobs
    await start_worker(envoi)
    row = await _dead_letter(envoi, jobs)
    await envoi.dead_letters.retry(row.id)
    await until(lambda: rows(envoi, status="FAILED"), timeout=15, message="a second dead letter")
    old, new = await rows(envoi)
    assert (old.id, old.status) == (row.id, "RETRIED")
    assert (new.job_id, new.attempts_made, new.status) == (f"dlq-retry-{row.id}", 2, "FAILED")


async def test_retry_many_and_retry_in_fallback_mode_runs_inline(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    jobs = Jobs()
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=jobs.registry)
    for _ in range(3):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SWITCH", {"n": 1})
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "ALWAYS_FAIL", {"n": 2})
    jobs.broken = False
    service = envoi.dead_letters
    labels = {"queue": NOTIFICATIONS_QUEUE, "job_name": "SWITCH"}
    retried_before = REGISTRY.get_sample_value("envoi_jobs_retried_total", labels) or 0
    done = await service.retry_many(FailedJobFilters(job_name="SWITCH"))
    assert (done.total, done.delivered, done.queued, done.failed_again) == (3, 3, 0, 0)
    assert REGISTRY.get_sample_value("envoi_jobs_retried_total", labels) == retried_before + 3
    assert [c.mode for c in jobs.named("SWITCH")] == ["sync"] * 6
    assert (await service.retry_many(FailedJobFilters(job_name="SWITCH"))).total == 0
    assert (await service.retry_many(FailedJobFilters(status="RETRIED"))).total == 0  # type: ignore[arg-type]
    stats = await service.stats()
    assert stats.by_status == {"FAILED": 1, "RETRIED": 3, "RESOLVED": 0}


async def test_force_retry_re_enqueues_under_the_same_job_id(
    envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    """A crash between the claim and the enqueue leaves a RETRIED row and no job: `force` recovers it."""
    envoi, jobs = envoi_with_jobs
    row = await _dead_letter_without_worker(envoi)
    service = envoi.dead_letters
    await service.retry(row.id)
    await bull_queue(envoi.queue, NOTIFICATIONS_QUEUE).remove(f"dlq-retry-{row.id}")  # the "crash"
    await service.retry(row.id, force=True)
    await service.retry(row.id, force=True)  # the job exists: bullmq ignores this add
    jobs.broken = False
    await start_worker(envoi)
    await eventually(lambda: len(jobs.named("SWITCH")) == 1, message="the forced retry ran")
    await until(lambda: _state_is(envoi, f"dlq-retry-{row.id}", "unknown"), message="completed")
    assert len(jobs.named("SWITCH")) == 1


async def _dead_letter_without_worker(envoi: Envoi) -> Any:
    await SqlFailureRecorder(envoi.db).record(failure(1, job_name="SWITCH"))
    [row] = await rows(envoi)
    return row


async def test_a_row_of_a_queue_envoi_does_not_serve_is_left_failed(
    envoi_with_jobs: tuple[Envoi, Jobs],
) -> None:
    envoi, _ = envoi_with_jobs
    await SqlFailureRecorder(envoi.db).record(failure(1, queue="legacy-node-queue"))
    [row] = await rows(envoi)
    service = envoi.dead_letters
    with pytest.raises(ValueError, match="unknown queue"):
        await service.retry(row.id)
    [after] = await rows(envoi)
    assert (after.status, after.retried_job_id) == ("FAILED", None)
    assert (await service.retry_many(FailedJobFilters())).total == 0


async def test_retry_says_when_the_job_ran_inline_and_failed_again(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    """Without a queue a retry runs now: the outcome says delivered or failed again, never just "retried"."""
    jobs = Jobs()
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=jobs.registry)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "ALWAYS_FAIL", {"to": "jane@example.com"})
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SWITCH", {"to": "paul@example.com"})
    failing, switch = (await rows(envoi))[0], (await rows(envoi))[1]
    service = FailedJobService(db=envoi.db, queue=envoi.queue)

    again = await service.retry(failing.id)
    assert (again.result, again.failed_again, again.enqueued.mode) == ("failed_again", True, "sync")
    assert again.new_dead_letter is not None
    new = again.new_dead_letter
    assert new.id not in (failing.id, switch.id)
    assert (new.job_name, new.job_data, new.status) == ("ALWAYS_FAIL", {"to": "jane@example.com"}, "FAILED")
    assert new.error_message == "boom 1"
    assert (await service.get(failing.id)).status == "RETRIED"  # type: ignore[union-attr]

    jobs.broken = False
    delivered = await service.retry(switch.id)
    assert (delivered.result, delivered.failed_again, delivered.new_dead_letter) == ("delivered", False, None)

    # The new dead letter, retried in bulk, fails again: counted, and the row it left is named.
    bulk = await service.retry_many(FailedJobFilters(job_name="ALWAYS_FAIL"))
    assert (bulk.total, bulk.failed_again, bulk.queued, bulk.delivered) == (1, 1, 0, 0)
    [outcome] = bulk.failures
    assert outcome.row.id == new.id and outcome.new_dead_letter is not None
    assert outcome.new_dead_letter.id not in (failing.id, new.id)


async def test_retry_needs_a_queue_and_says_so(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    envoi, _ = envoi_with_jobs
    await seed(envoi, 1)
    [row] = await rows(envoi)
    with pytest.raises(TypeError, match="needs a queue"):
        await FailedJobService(db=envoi.db).retry(row.id)
    assert (await FailedJobService(db=envoi.db).get(row.id)).status == "FAILED"  # type: ignore[union-attr]


async def test_counts_per_status_per_hour_and_since_an_id(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    envoi, _ = envoi_with_jobs
    service = FailedJobService(db=envoi.db)
    assert await service.count_by_status() == {}
    assert await service.newest_id() == ""
    assert await service.summary_since("") == DeadLetterSummary()
    await seed(envoi, 6)
    first_six = await service.newest_id()
    # ULIDs order by millisecond only: the next rows must be made in a later one than the first six.
    await eventually(lambda: time.time() * 1000 > ULID.from_str(first_six).milliseconds + 1)
    await seed_more(envoi, 6, 9)
    assert await service.count_by_status() == {"FAILED": 9}

    everything = await service.summary_since("")
    assert (everything.total, everything.last_id) == (9, await service.newest_id())
    assert everything.by_queue == {WEBHOOKS_QUEUE: 3, NOTIFICATIONS_QUEUE: 6}
    newer = await service.summary_since(first_six)
    assert newer.total == 3 and newer.by_job_name == {"SEND_EMAIL": 2, "SEND_SMS": 1}
    assert newer.last_id == everything.last_id > first_six
    assert (await service.summary_since(newer.last_id)).total == 0

    now = datetime.now(UTC)
    hours = await service.per_hour(now=now)
    assert len(hours) == 24 and hours[-1][0] == now.replace(minute=0, second=0, microsecond=0)
    assert hours[-1][1] + hours[-2][1] == sum(count for _, count in hours) == 9  # the last hour, or its edge
    assert [start.hour for start, _ in hours[-2:]] == [(now.hour - 1) % 24, now.hour]
    tomorrow = await service.per_hour(now=now + timedelta(days=1, hours=1))
    assert sum(count for _, count in tomorrow) == 0


async def seed_more(envoi: Envoi, start: int, stop: int) -> None:
    """Rows `start`..`stop - 1`, laid out as `seed` lays them out."""
    await SqlFailureRecorder(envoi.db).record_many(
        [
            failure(
                i,
                queue=WEBHOOKS_QUEUE if i % 3 == 0 else NOTIFICATIONS_QUEUE,
                job_name="SEND_SMS" if i % 2 else "SEND_EMAIL",
            )
            for i in range(start, stop)
        ]
    )
