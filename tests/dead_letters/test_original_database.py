"""envoi in the original NestJS system's PostgreSQL database, its tables in a schema of their own.

The original's `failed_jobs` (and `message_deliveries`) sit in `public` under the names envoi uses:
`envoi migrate` fails there as envoi was; with DATABASE_SCHEMA it migrates, works and goes down again
beside them without touching them. PostgreSQL only (SQLite has no schemas and ignores the setting).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings
from envoi.db.migrate import current_revision, downgrade, head_revision, in_schema, pending_message, upgrade
from envoi.db.models import Base
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.dead_letters.original_db import (
    ORIGINAL_TABLES,
    original_row,
    original_rows,
    seed_original,
    sync_engine,
    tables_in,
)
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import bull_queue, eventually

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="TEST_DATABASE_URL not set: the original system's database is PostgreSQL",
)

ENVOI_TABLES = {
    "failed_jobs",
    "notifications",
    "message_deliveries",
    "admin_sessions",
    "admin_login_attempts",
    "webhook_endpoints",
    "webhook_events",
    "webhook_attempts",
    "idempotency_keys",
    "scheduled_messages",
    "recipient_preferences",
    "recipient_settings",
    "inbox_digests",
    "alembic_version",
}
runner = CliRunner()


def migrate(url: str, **env: str) -> Any:
    return runner.invoke(app, ["migrate"], env={"DATABASE_URL": url, "LOG_LEVEL": "WARNING", **env})


def drift(url: str, schema: str) -> list[Any]:
    engine = sync_engine(url)
    try:
        with engine.connect() as raw:
            context = MigrationContext.configure(in_schema(raw, schema), opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def count(url: str, table: str) -> int:
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_migrate_without_a_schema_fails_on_the_originals_failed_jobs(original_database_url: str) -> None:
    url = original_database_url
    seed_original(url, [original_row(1)])
    before = original_rows(url)
    result = migrate(url)
    assert result.exit_code != 0
    assert "failed_jobs" in str(result.exception)
    # The whole chain ran in one transaction: nothing of envoi's is left half-made in `public`.
    assert tables_in(url, "public") == ORIGINAL_TABLES
    assert original_rows(url) == before


def test_migrate_with_database_schema_puts_envoi_beside_the_original(original_database_url: str) -> None:
    url = original_database_url
    seed_original(url, [original_row(1), original_row(2)])
    before = original_rows(url)
    result = migrate(url, DATABASE_SCHEMA="envoi")
    assert result.exit_code == 0, result.output
    assert "Database is up to date." in result.output
    assert tables_in(url, "envoi") == ENVOI_TABLES
    assert tables_in(url, "public") == ORIGINAL_TABLES
    assert original_rows(url) == before
    assert current_revision(url, schema="envoi") == head_revision()
    assert current_revision(url) is None, "no alembic_version in public"
    assert pending_message(url, schema="envoi") is None
    assert pending_message(url) is not None
    assert drift(url, "envoi") == []
    assert migrate(url, DATABASE_SCHEMA="envoi").exit_code == 0, "migrating again is a no-op"


def test_the_chain_goes_down_and_up_in_its_schema_only(original_database_url: str) -> None:
    url = original_database_url
    seed_original(url, [original_row(1)])
    before = original_rows(url)
    upgrade(url, schema="envoi")
    downgrade(url, "base", schema="envoi")
    assert tables_in(url, "envoi") == {"alembic_version"}
    assert current_revision(url, schema="envoi") is None
    assert tables_in(url, "public") == ORIGINAL_TABLES
    assert original_rows(url) == before
    upgrade(url, schema="envoi")
    assert drift(url, "envoi") == []


# The settings fixtures would also run this on SQLite, where it means nothing: PostgreSQL only.
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
async def test_envoi_works_from_its_own_schema_and_leaves_the_originals_tables_alone(
    original_database_url: str,
    make_delivery_settings: Any,
    make_envoi: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
) -> None:
    url = original_database_url
    seed_original(url, [original_row(1)])
    before = original_rows(url)
    upgrade(url, schema="envoi")
    settings: Settings = make_delivery_settings(database_url=url, database_schema="envoi", job_attempts=1)
    envoi: Envoi = make_envoi(settings)
    await start_worker(envoi)
    email = {"to": "lead@example.com", "subject": "RDV confirmé", "html": "<p>ok</p>"}
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", email)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33698765432", "message": "Rappel"})
    inapp = {
        "userId": "u1",
        "title": "Nouveau lead",
        "message": "Jeanne",
        "metadata": {"notificationId": "n1"},
    }
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CREATE_INAPP_NOTIFICATION", inapp)
    # Added as a Node producer would, past envoi's validation: it fails at once, a dead letter.
    await bull_queue(envoi.queue, NOTIFICATIONS_QUEUE).add("SEND_EMAIL", {"to": "nobody"}, {"attempts": 1})
    await eventually(lambda: smtp_sink.messages, timeout=20, message="the email")
    await eventually(lambda: count(url, "envoi.notifications") == 1, timeout=20, message="the in-app row")
    await eventually(lambda: count(url, "envoi.failed_jobs") == 1, timeout=20, message="the dead letter")
    # The SMS's ledger row is written when it is claimed, before Twilio answers: wait for the SMS itself.
    await eventually(lambda: len(twilio_server.messages) == 1, timeout=20, message="the SMS")
    await eventually(
        lambda: count(url, "envoi.message_deliveries") == 2, timeout=20, message="the ledger rows"
    )
    assert count(url, 'public."Notification"') == 0
    assert count(url, "public.message_deliveries") == 0
    assert original_rows(url) == before
    listed = await envoi.dead_letters.list()
    assert [(row.job_name, row.job_data) for row in listed.items] == [("SEND_EMAIL", {"to": "nobody"})]
