"""`envoi dlq` on a table of 100,000 rows: pages, stats and a filtered bulk delete stay quick."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings
from envoi.db.session import normalize_url
from tests.dead_letters.seeding import expected_count, seed_failed_jobs

ROWS = 100_000
runner = CliRunner()


def test_dlq_commands_on_100k_rows(settings: Settings) -> None:
    engine = sa.create_engine(normalize_url(settings.database_url, asynchronous=False))
    started = time.perf_counter()
    with engine.begin() as connection:
        seed_failed_jobs(connection, ROWS)
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE failed_jobs"))
    engine.dispose()
    seeded_s = time.perf_counter() - started
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": "redis://127.0.0.1:1/0", "COLUMNS": "200"}

    def dlq(*args: str) -> tuple[float, str]:
        began = time.perf_counter()
        result = runner.invoke(app, ["dlq", *args], env=env)
        assert result.exit_code == 0, (args, result.output)
        return time.perf_counter() - began, result.stdout

    timings: dict[str, float] = {}
    timings["list"], out = dlq("list", "--json")
    page = json.loads(out)
    assert [item["job_id"] for item in page["items"][:2]] == [str(ROWS), str(ROWS - 1)]
    timings["list --queue --job-name"], out = dlq(
        "list", "--queue", "webhooks", "--job-name", "SEND_SMS", "--limit", "100", "--json"
    )
    assert {(i["queue_name"], i["job_name"]) for i in json.loads(out)["items"]} == {("webhooks", "SEND_SMS")}
    timings["list --status (page 2)"], out = dlq(
        "list", "--status", "RETRIED", "--cursor", page["items"][-1]["id"], "--json"
    )
    assert len(json.loads(out)["items"]) == 50
    timings["stats"], out = dlq("stats", "--json")
    stats = json.loads(out)
    assert stats["total"] == ROWS
    assert stats["by_queue"]["webhooks"] == expected_count(ROWS, queue="webhooks")
    assert stats["by_status"] == {"FAILED": ROWS - ROWS // 10, "RETRIED": ROWS // 10, "RESOLVED": 0}
    timings["delete --all --queue --job-name"], out = dlq(
        "delete", "--all", "--queue", "webhooks", "--job-name", "SEND_EMAIL", "--yes", "--json"
    )
    deleted = expected_count(ROWS, queue="webhooks", job_name="SEND_EMAIL")
    assert json.loads(out) == {"deleted": deleted, "not_found": []}
    assert json.loads(dlq("stats", "--json")[1])["total"] == ROWS - deleted
    print(
        f"\nseeded {ROWS} rows in {seeded_s:.2f}s; " + ", ".join(f"{k}: {v:.2f}s" for k, v in timings.items())
    )
    assert all(seconds < 10 for seconds in timings.values()), timings
