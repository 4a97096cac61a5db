"""`envoi import-failed-jobs`: the original system's dead letters, each copied once into envoi's table.

The original's side is a PostgreSQL database holding its Prisma `failed_jobs` (skipped without
TEST_DATABASE_URL); envoi's side runs on SQLite and PostgreSQL as every database test does.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from bullmq import Worker as BullWorker
from sqlalchemy import select
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.db.models import FailedJob
from envoi.dead_letters.imports import import_id
from envoi.dead_letters.reconciler import Reconciler
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.embedded_redis import free_port
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.queue.jobs import HandlerRegistry
from envoi.runtime import Envoi
from tests.dead_letters.original_db import original_row, original_rows, seed_original
from tests.helpers import bull_queue, eventually, job_state

runner = CliRunner()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": str(settings.redis_url),
        "REDIS_PREFIX": settings.redis_prefix,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def import_jobs(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, ["import-failed-jobs", *args], env=env)


async def envoi_rows(envoi: Envoi) -> list[FailedJob]:
    async with envoi.db.session() as session:
        return list((await session.scalars(select(FailedJob).order_by(FailedJob.id))).all())


HOSTILE = [
    original_row(1),
    # No bullmq job id (the original's listener had none to give).
    original_row(2, jobId=None, jobName="CREATE_INAPP_NOTIFICATION", jobData='{"userId":"u1"}'),
    # Not JSON: kept as text, not lost.
    original_row(3, jobData="{'to': broken", errorMessage="Erreur inattendue: é ✓"),
    # JSON null, and names longer than envoi's columns.
    original_row(4, jobData="null", jobName="J" * 300, queueName="q" * 300),
]


async def test_import_copies_every_row_once_mapping_its_columns(
    original_database_url: str, settings: Settings, make_envoi: Any
) -> None:
    seed_original(original_database_url, HOSTILE)
    before = original_rows(original_database_url)
    env = env_for(settings)

    first = await asyncio.to_thread(import_jobs, env, "--from-url", original_database_url)
    assert first.exit_code == 0, first.output
    assert "public.failed_jobs: 4 read, 4 imported, 0 already in envoi" in first.stdout
    assert "1 with jobData that is not JSON: kept as text" in first.stdout

    envoi: Envoi = make_envoi(settings)
    rows = {row.job_options["importedFrom"]["id"]: row for row in await envoi_rows(envoi)}
    assert set(rows) == {r["id"] for r in HOSTILE}
    one = rows[HOSTILE[0]["id"]]
    assert one.id == import_id(HOSTILE[0]["id"], HOSTILE[0]["createdAt"])
    assert (one.queue_name, one.job_name, one.job_id, one.status) == (
        "notifications",
        "SEND_EMAIL",
        "1001",
        "FAILED",
    )
    assert one.job_data == {"to": "lead1@example.com", "subject": "Relance 1", "html": "<p>1</p>"}
    assert one.job_options == {
        "jobId": "1001",
        "importedFrom": {"table": "public.failed_jobs", "id": HOSTILE[0]["id"]},
    }
    assert one.error_message == "Resend API error: 422 invalid recipient 1"
    assert (one.stacktrace, one.attempts_made) == ([], 0)
    assert one.created_at == HOSTILE[0]["createdAt"].replace(tzinfo=UTC)
    assert one.finished_on == int(one.created_at.timestamp() * 1000)
    assert rows[HOSTILE[1]["id"]].job_id is None
    assert rows[HOSTILE[2]["id"]].job_data == "{'to': broken"
    assert rows[HOSTILE[2]["id"]].error_message == "Erreur inattendue: é ✓"
    assert rows[HOSTILE[3]["id"]].job_data is None
    assert len(rows[HOSTILE[3]["id"]].job_name) == len(rows[HOSTILE[3]["id"]].queue_name) == 100

    again = await asyncio.to_thread(import_jobs, env, "--from-url", original_database_url)
    assert again.exit_code == 0, again.output
    assert "4 read, 0 imported, 4 already in envoi" in again.stdout
    assert len(await envoi_rows(envoi)) == 4
    assert original_rows(original_database_url) == before, "the original's table is only read"


async def test_imported_rows_page_in_the_order_they_failed(
    original_database_url: str, settings: Settings, make_envoi: Any
) -> None:
    # Ids in the reverse order of their times: envoi's pages (by id) must follow the times.
    rows = [original_row(n, id=f"c{9 - n}", createdAt=datetime(2025, 1, 1 + n, 8)) for n in range(5)]
    seed_original(original_database_url, rows)
    result = await asyncio.to_thread(import_jobs, env_for(settings), "--from-url", original_database_url)
    assert result.exit_code == 0, result.output
    envoi: Envoi = make_envoi(settings)
    page = await envoi.dead_letters.list()
    assert [row.created_at.day for row in page.items] == [5, 4, 3, 2, 1], "newest first"


async def test_dry_run_counts_and_writes_nothing(
    original_database_url: str, settings: Settings, make_envoi: Any
) -> None:
    seed_original(original_database_url, [original_row(1), original_row(2)])
    result = await asyncio.to_thread(
        import_jobs, env_for(settings), "--from-url", original_database_url, "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "2 read, 2 would be imported, 0 already in envoi" in result.stdout
    assert "Dry run: nothing written." in result.stdout
    assert await envoi_rows(make_envoi(settings)) == []


async def test_import_and_reconciler_record_one_row_per_failure(
    original_database_url: str, settings: Settings, make_envoi: Any
) -> None:
    """The original kept failed jobs in bullmq's failed set too: the reconciler of an envoi worker finds
    them there, the import in the table; each failure must end up as one row."""
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    queue = bull_queue(envoi.queue, NOTIFICATIONS_QUEUE)
    await queue.add("SEND_EMAIL", {"to": "lead1@example.com"}, {"jobId": "1001", "attempts": 1})
    await queue.add("SEND_EMAIL", {"to": "lead2@example.com"}, {"jobId": "1002", "attempts": 1})

    async def original_processor(job: Any, token: str) -> None:
        raise RuntimeError("Resend API error")

    # The original's own processor fails them, as it did before envoi.
    worker = BullWorker(
        NOTIFICATIONS_QUEUE,
        original_processor,
        {"connection": settings.redis_url, "prefix": settings.redis_prefix},
    )
    try:
        for job_id in ("1001", "1002"):
            await eventually(
                lambda j=job_id: _is_failed(envoi, j), timeout=15, message=f"job {job_id} failed"
            )
    finally:
        await worker.close()
    reconciler = Reconciler(
        db=envoi.db,
        failed_set=envoi.queue.failed_set,
        recorder=SqlFailureRecorder(envoi.db),
        queues=[NOTIFICATIONS_QUEUE],
        interval_s=1,
    )
    # 1002 is recorded by the reconciler first; 1001 by the import first; 1003 is only in the table.
    await envoi.queue.failed_set.move_watermark(NOTIFICATIONS_QUEUE, 2**62)  # reconcile nothing yet
    seed_original(original_database_url, [original_row(n) for n in (1, 2, 3)])
    job_1002 = await queue.getJob("1002")
    assert await reconciler.reconcile_once(full=True) == 2

    async with envoi.db.session() as session:
        await session.execute(FailedJob.__table__.delete().where(FailedJob.job_id == "1001"))
    result = await asyncio.to_thread(import_jobs, env_for(settings), "--from-url", original_database_url)
    assert result.exit_code == 0, result.output
    assert "3 read, 2 imported, 1 already in envoi" in result.stdout
    assert "2 still in bullmq's failed set" in result.stdout
    assert await reconciler.reconcile_once(full=True) == 0

    rows = {row.job_id: row for row in await envoi_rows(envoi)}
    assert sorted(rows) == ["1001", "1002", "1003"]
    assert rows["1002"].finished_on == job_1002.finishedOn
    assert rows["1002"].stacktrace, "1002 was recorded from Redis first: its stack trace is kept"
    assert rows["1001"].job_options["importedFrom"]["id"] == original_row(1)["id"]


async def _is_failed(envoi: Envoi, job_id: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == "failed"


# --- what the command refuses ------------------------------------------------------------------------


def test_a_source_that_is_not_postgresql_is_a_usage_error(settings: Settings) -> None:
    result = import_jobs(env_for(settings), "--from-url", "sqlite:///elsewhere.db")
    assert result.exit_code == 2
    assert "PostgreSQL" in result.stderr


@pytest.mark.parametrize("schema", ["x; DROP TABLE failed_jobs", "", "1abc", "a" * 64])
def test_a_bad_schema_name_is_a_usage_error(settings: Settings, schema: str) -> None:
    result = import_jobs(env_for(settings), "--from-schema", schema)
    assert result.exit_code == 2
    assert "--from-schema" in result.stderr


def test_a_missing_table_fails_and_writes_nothing(original_database_url: str, settings: Settings) -> None:
    result = import_jobs(env_for(settings), "--from-url", original_database_url, "--from-schema", "nosuch")
    assert result.exit_code == 1
    assert "no table nosuch.failed_jobs" in result.stderr


async def test_redis_unreachable_fails_and_writes_nothing(
    original_database_url: str, settings: Settings, make_envoi: Any
) -> None:
    seed_original(original_database_url, [original_row(1)])
    env = env_for(settings, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = await asyncio.to_thread(import_jobs, env, "--from-url", original_database_url)
    assert result.exit_code == 1
    assert "Redis unreachable" in result.stderr
    assert await envoi_rows(make_envoi(settings)) == []
    queue_off = env_for(settings, QUEUE_ENABLED="false")
    result = await asyncio.to_thread(import_jobs, queue_off, "--from-url", original_database_url)
    assert result.exit_code == 0, result.output
    assert "1 imported" in result.stdout


def test_a_database_behind_its_migrations_fails(original_database_url: str, tmp_path: Any) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}", "QUEUE_ENABLED": "false"}
    result = import_jobs(env, "--from-url", original_database_url)
    assert result.exit_code == 1
    assert "envoi migrate" in result.stderr


# --- in the original's own database, envoi in its schema (PostgreSQL only) ------------------------------


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="the original's database is PostgreSQL")
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
async def test_import_within_the_originals_database_into_envoi_schema(
    original_database_url: str, make_settings: Any, make_envoi: Any
) -> None:
    url = original_database_url
    seed_original(url, [original_row(1), original_row(2)])
    upgrade(url, schema="envoi")
    settings: Settings = make_settings(database_url=url, database_schema="envoi")
    env = env_for(settings, DATABASE_SCHEMA="envoi")
    result = await asyncio.to_thread(import_jobs, env)
    assert result.exit_code == 0, result.output
    assert "public.failed_jobs: 2 read, 2 imported" in result.stdout
    listed = await asyncio.to_thread(runner.invoke, app, ["dlq", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert '"job_id": "1002"' in listed.stdout and '"job_id": "1001"' in listed.stdout
    # envoi's own table named as the source: refused, not read as the original's.
    own = await asyncio.to_thread(import_jobs, env, "--from-schema", "envoi")
    assert own.exit_code == 2
    assert "envoi's own table" in own.stderr
