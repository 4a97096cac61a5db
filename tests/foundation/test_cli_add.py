"""`envoi jobs add JOB -f file.jsonl`: many jobs of one name in bulk from a terminal, every line checked
first, a bad one named by its line number with nothing added."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from bullmq import Job

from envoi.config import Settings
from envoi.devenv import write_dev_env
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.foundation.test_cli_instance import envoi_cmd, project  # noqa: F401  (the fixture)
from tests.helpers import bull_queue

SMS = '{"to": "+33612345678", "message": "Sale today"}'


@pytest.fixture
def instance(project: Path, redis_url: str, redis_prefix: str) -> Settings:  # noqa: F811
    write_dev_env(
        project,
        {"REDIS_URL": redis_url, "DATABASE_URL": "sqlite:///./var/envoi.db", "REDIS_PREFIX": redis_prefix},
    )
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        database_url=f"sqlite:///{project / 'var' / 'envoi.db'}",
    )


def in_redis(settings: Settings, job_ids: list[str]) -> list[Any]:
    async def read() -> list[Any]:
        envoi = Envoi(settings)
        try:
            queue = bull_queue(envoi.queue, NOTIFICATIONS_QUEUE)
            counts = await queue.getJobCounts()
            jobs = [await Job.fromId(queue, job_id) for job_id in job_ids]
            return [sum(counts.values()), *[job.data if job else None for job in jobs]]
        finally:
            await envoi.close()

    return asyncio.run(read())


def test_a_file_of_jobs_is_added_in_bulk_and_each_id_printed_in_order(
    instance: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(f"{SMS}\n\n" + SMS.replace("Sale", "Last day") + "\n")
    code, out, err = envoi_cmd("jobs", "add", "SEND_SMS", "--file", str(batch), capsys=capsys)
    assert code == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert [mode for _, mode in rows] == ["queued", "queued"]
    assert "Added 2 SEND_SMS job(s): 2 queued, 0 run inline" in err
    total, first, second = in_redis(instance, [job_id for job_id, _ in rows])
    assert total == 2
    assert (first["message"], second["message"]) == ("Sale today", "Last day today")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([SMS, "{not json", SMS], "line 2: not JSON"),
        ([SMS, '["a list"]'], "line 2: must be a JSON object"),
        ([SMS, SMS, '{"to": "nope", "message": "x"}'], "line 3: to: "),
        ([SMS, '{"to": "+33612345678"}'], "line 2: message: "),
        (["", "  "], "no job in the file"),
    ],
)
def test_a_bad_line_is_named_by_its_number_and_nothing_is_added(
    instance: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    message: str,
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    code, out, err = envoi_cmd("jobs", "add", "SEND_SMS", "-f", str(batch), capsys=capsys)
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith("envoi: ") and message in line, line
    assert out == ""
    assert in_redis(instance, []) == [0]


def test_an_unknown_job_name_is_refused(
    instance: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(SMS + "\n")
    code, _, err = envoi_cmd("jobs", "add", "NO_SUCH_JOB", "-f", str(batch), capsys=capsys)
    assert code == 2 and "no job named 'NO_SUCH_JOB'" in err and "SEND_SMS" in err
    assert in_redis(instance, []) == [0]
