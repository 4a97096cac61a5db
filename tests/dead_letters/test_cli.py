"""`envoi dlq ...` through typer's CliRunner, on a real database (and Redis for retry)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings
from envoi.db.models import FailedJob
from envoi.db.session import Database
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.embedded_redis import free_port
from envoi.queue import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from envoi.runtime import Envoi
from tests.dead_letters.support import failure
from tests.fixtures.smtp import SmtpSink
from tests.helpers import bull_queue

runner = CliRunner()


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": str(settings.redis_url),
        "REDIS_PREFIX": settings.redis_prefix,
        "LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }


def seed(url: str, count: int, **extra: Any) -> list[str]:
    """`count` rows (every third on the webhooks queue); their ids, newest first."""

    async def main() -> list[str]:
        db = Database(url)
        try:
            await SqlFailureRecorder(db).record_many(
                [
                    failure(i, queue=WEBHOOKS_QUEUE if i % 3 == 0 else NOTIFICATIONS_QUEUE, **extra)
                    for i in range(count)
                ]
            )
            from sqlalchemy import select

            from envoi.db.models import FailedJob

            async with db.session() as session:
                return list((await session.scalars(select(FailedJob.id).order_by(FailedJob.id.desc()))).all())
        finally:
            await db.dispose()

    return asyncio.run(main())


def dlq(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    return runner.invoke(app, ["dlq", *args], env=env, input=input)


def test_list_json_masks_recipients_unless_revealed(env: dict[str, str]) -> None:
    seed(env["DATABASE_URL"], 3)
    result = dlq(env, "list", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert len(listed["items"]) == 3 and listed["next_cursor"] is None
    first = listed["items"][0]
    assert first["job_data"]["to"] == "u***@example.com"
    assert "12345" not in json.dumps(first["job_data"])
    revealed = json.loads(dlq(env, "list", "--json", "--reveal").stdout)
    assert revealed["items"][0]["job_data"]["to"] == "user2@example.com"


def test_list_table_filters_and_pages(env: dict[str, str]) -> None:
    ids = seed(env["DATABASE_URL"], 7)
    result = dlq(env, "list", "--queue", "webhooks", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "SEND_EMAIL" in result.stdout and "More: envoi dlq list --cursor" in result.stdout
    page = json.loads(dlq(env, "list", "--queue", "webhooks", "--limit", "2", "--json").stdout)
    assert [item["job_id"] for item in page["items"]] == ["6", "3"]
    rest = json.loads(
        dlq(env, "list", "--queue", "webhooks", "--cursor", page["next_cursor"], "--json").stdout
    )
    assert [item["job_id"] for item in rest["items"]] == ["0"]
    assert len(json.loads(dlq(env, "list", "--status", "failed", "--json").stdout)["items"]) == len(ids)
    assert "No dead letters." in dlq(env, "list", "--job-name", "NOPE").stdout


def test_bad_arguments_exit_2(env: dict[str, str]) -> None:
    [row_id] = seed(env["DATABASE_URL"], 1)
    for args in (
        ["list", "--status", "LOST"],
        ["list", "--limit", "0"],
        ["list", "--cursor", "not-a-cursor"],
        ["list", "--since", "yesterday"],
        ["delete", row_id, "--all"],
        ["delete"],
        ["retry"],
        ["retry", row_id, "--all"],
        ["retry", row_id, "--queue", "webhooks"],
        ["delete", "--all", "--status", "nope", "--yes"],
    ):
        result = dlq(env, *args)
        assert result.exit_code == 2, (args, result.output)


def test_show(env: dict[str, str]) -> None:
    [row_id] = seed(env["DATABASE_URL"], 1)
    shown = dlq(env, "show", row_id)
    assert shown.exit_code == 0, shown.output
    assert "u***@example.com" in shown.stdout and "user0@example.com" not in shown.stdout
    assert "error 0" in shown.stdout and "Traceback 0" in shown.stdout
    as_json = json.loads(dlq(env, "show", row_id, "--json").stdout)
    assert as_json["id"] == row_id and as_json["job_data"]["to"] == "u***@example.com"
    assert json.loads(dlq(env, "show", row_id, "--json", "--reveal").stdout)["job_data"]["to"] == (
        "user0@example.com"
    )
    missing = dlq(env, "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.exit_code == 1 and "no dead letter" in missing.stderr


def test_delete_asks_first(env: dict[str, str]) -> None:
    ids = seed(env["DATABASE_URL"], 6)
    refused = dlq(env, "delete", ids[0], input="n\n")
    assert refused.exit_code == 1 and "Delete 1 dead letter(s)?" in refused.stdout
    assert dlq(env, "show", ids[0]).exit_code == 0
    accepted = dlq(env, "delete", ids[0], input="y\n")
    assert accepted.exit_code == 0 and "Deleted 1 dead letter(s)." in accepted.stdout
    assert dlq(env, "show", ids[0]).exit_code == 1
    partly = dlq(env, "delete", ids[1], "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--yes")
    assert partly.exit_code == 1 and "Deleted 1" in partly.stdout
    bulk = dlq(env, "delete", "--all", "--queue", "webhooks", "--yes", "--json")
    assert bulk.exit_code == 0, bulk.output
    assert json.loads(bulk.stdout) == {"deleted": 2, "not_found": []}
    stats = json.loads(dlq(env, "stats", "--json").stdout)
    assert stats["total"] == 2 and stats["by_queue"] == {"notifications": 2}


def test_stats(env: dict[str, str]) -> None:
    seed(env["DATABASE_URL"], 9)
    result = dlq(env, "stats")
    assert result.exit_code == 0, result.output
    assert "Dead letters: 9" in result.stdout and "webhooks" in result.stdout
    stats = json.loads(dlq(env, "stats", "--json").stdout)
    assert stats == {
        "total": 9,
        "by_queue": {"webhooks": 3, "notifications": 6},
        "by_job_name": {"SEND_EMAIL": 9},
        "by_status": {"FAILED": 9, "RETRIED": 0, "RESOLVED": 0},
    }


def test_reading_needs_no_redis(env: dict[str, str]) -> None:
    seed(env["DATABASE_URL"], 2)
    no_redis = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    for args in (["list"], ["stats"], ["delete", "--all", "--yes"]):
        result = dlq(no_redis, *args)
        assert result.exit_code == 0, (args, result.output)


def test_unmigrated_database_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    result = dlq({**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.db'}"}, "list")
    assert result.exit_code == 1 and "envoi migrate" in result.stderr


def test_retry_enqueues_once(env: dict[str, str], settings: Settings) -> None:
    ids = seed(env["DATABASE_URL"], 4, job_name="PING")
    first = dlq(env, "retry", ids[0])
    assert first.exit_code == 0, first.output
    assert f"as job dlq-retry-{ids[0]}" in first.stdout
    again = dlq(env, "retry", ids[0])
    assert again.exit_code == 1 and "not FAILED" in again.stderr
    assert dlq(env, "retry", "01ARZ3NDEKTSV4RRFFQ69G5FAV").exit_code == 1
    # Rows: ids[0] is i=3 (webhooks, retried above), then i=2 and i=1 (notifications), i=0 (webhooks).
    bulk = dlq(env, "retry", "--all", "--queue", "notifications", "--json")
    assert bulk.exit_code == 0, bulk.output
    assert json.loads(bulk.stdout) == {"retried": 2, "rows": [], "errors": []}
    assert json.loads(dlq(env, "retry", "--all", "--queue", "notifications", "--json").stdout)["retried"] == 0
    stats = json.loads(dlq(env, "stats", "--json").stdout)
    assert stats["by_status"] == {"FAILED": 1, "RETRIED": 3, "RESOLVED": 0}

    async def waiting(queue: str) -> list[str]:
        envoi = Envoi(settings)
        try:
            jobs = await bull_queue(envoi.queue, queue).getJobs(["waiting"])
            return sorted(str(job.id) for job in jobs)
        finally:
            await envoi.close()

    assert asyncio.run(waiting(WEBHOOKS_QUEUE)) == [f"dlq-retry-{ids[0]}"]
    assert asyncio.run(waiting(NOTIFICATIONS_QUEUE)) == sorted(f"dlq-retry-{i}" for i in ids[1:3])


QUOTING = "21211: The 'To' number +33612345678 is not valid; copy to <jane@example.com> refused"
QUOTING_TRACE = "Traceback (most recent call last):\nDeliveryError: 550 <jane@example.com> +33612345678"


def test_error_text_and_stack_traces_are_masked_unless_revealed(env: dict[str, str]) -> None:
    [row_id] = seed(env["DATABASE_URL"], 1, error_message=QUOTING, stacktrace=[QUOTING_TRACE])

    def masked(out: str) -> bool:
        return "jane@example.com" not in out and "612345678" not in out and "j***@example.com" in out

    def revealed(out: str) -> bool:
        return "jane@example.com" in out and "+33612345678" in out

    table = dlq(env, "list")
    assert table.exit_code == 0, table.output
    assert masked(table.stdout) and "21211: The 'To' number +33 6" in table.stdout
    shown = dlq(env, "show", row_id)
    assert masked(shown.stdout) and "550 <j***@example.com> +33 6** ** ** 78" in shown.stdout
    listed = json.loads(dlq(env, "list", "--json").stdout)["items"][0]
    assert masked(json.dumps(listed)) and listed["error_message"].startswith("21211: The 'To' number +33 6")
    assert masked(json.dumps(json.loads(dlq(env, "show", row_id, "--json").stdout)))

    assert revealed(dlq(env, "list", "--reveal").stdout)
    assert revealed(dlq(env, "show", row_id, "--reveal").stdout)
    revealed_json = json.loads(dlq(env, "list", "--json", "--reveal").stdout)["items"][0]
    assert revealed_json["error_message"] == QUOTING and revealed_json["stacktrace"] == [QUOTING_TRACE]


def test_list_at_80_columns_keeps_every_rows_job_status_and_time(env: dict[str, str]) -> None:
    names = ["CREATE_INAPP_NOTIFICATION", "SEND_WHATSAPP", "SEND_EMAIL", "SEND_SMS"]
    for i, name in enumerate(names):
        seed(env["DATABASE_URL"], 1, job_name=name, job_id=f"j{i}", error_message="x " * 100)
    resolve = asyncio.run(_set_status(env["DATABASE_URL"], "SEND_SMS", "RESOLVED"))
    assert resolve == 1
    for columns in ("80", "100", "200"):
        result = dlq({**env, "COLUMNS": columns}, "list")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert all(len(line) <= int(columns) for line in lines), (columns, result.stdout)
        assert "Failed (UTC)" in lines[0] and "Status" in lines[0]
        listed = json.loads(dlq(env, "list", "--json").stdout)["items"]
        for item in listed:
            [line] = [line for line in lines if item["id"] in line]
            assert item["job_name"] in line and item["status"] in line, (columns, line)
            failed_at = datetime.fromtimestamp(item["finished_on"] / 1000, UTC)
            assert failed_at.strftime("%m-%d %H:%M") in line
        assert {item["job_name"] for item in listed} == set(names)
    # Room left at 80 columns goes to the error, cut to fit; none left means no error column.
    narrow = dlq({**env, "COLUMNS": "80"}, "list", "--job-name", "SEND_SMS")
    assert "Error" in narrow.stdout and "x x x" in narrow.stdout and "…" in narrow.stdout


async def _set_status(url: str, job_name: str, status: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            result = await session.execute(
                update(FailedJob).where(FailedJob.job_name == job_name).values(status=status)
            )
            return int(getattr(result, "rowcount", 0))
    finally:
        await db.dispose()


def test_retry_without_a_queue_says_delivered_or_failed_again(
    env: dict[str, str], smtp_sink: SmtpSink
) -> None:
    """QUEUE_ENABLED=false: the retry runs the real SEND_EMAIL handler now, against a real SMTP server."""
    email = {"to": "jane@example.com", "subject": "Votre rendez-vous", "html": "<p>Demain</p>"}
    inline = {
        **env,
        "QUEUE_ENABLED": "false",
        "EMAIL_PROVIDER": "smtp",
        "EMAIL_FROM": "envoi <no-reply@envoi.test>",
        "SMTP_HOST": smtp_sink.host,
        "SMTP_PORT": str(smtp_sink.port),
        "SMTP_SECURITY": "none",
    }
    first, second = seed(env["DATABASE_URL"], 2, job_name="SEND_EMAIL", data=email)

    smtp_sink.fail_next(code=550, stage="rcpt", text="5.1.1 <jane@example.com>: Recipient address rejected")
    failed = dlq(inline, "retry", first)
    assert failed.exit_code == 1, failed.output
    assert "Retried" not in failed.stdout
    assert f"{first} ran inline and failed again: new dead letter" in failed.stderr
    assert "550" in failed.stderr and "jane@example.com" not in failed.stderr  # the error, masked
    assert smtp_sink.messages == []
    after = json.loads(dlq(env, "list", "--json").stdout)["items"]
    [new] = [item for item in after if item["id"] not in (first, second)]
    assert new["id"] in failed.stderr and new["status"] == "FAILED" and "550" in new["error_message"]
    assert next(item for item in after if item["id"] == first)["status"] == "RETRIED"

    delivered = dlq(inline, "retry", second)
    assert delivered.exit_code == 0, delivered.output
    assert f"Retried {second}: ran inline: delivered" in delivered.stdout
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["jane@example.com"]]

    as_json = dlq(inline, "retry", new["id"], "--json")  # the new dead letter, now delivered
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["rows"][0] | {"id": "-"} == {
        "id": "-",
        "retried_job_id": f"dlq-retry-{new['id']}",
        "mode": "sync",
        "result": "delivered",
    }
