"""The Alembic chain: up and down, step by step, no drift from the models, and `envoi migrate` anywhere.

Runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set (a fresh schema per test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from envoi.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    pending_message,
    upgrade,
)
from envoi.db.models import Base
from envoi.db.session import normalize_url

OWN_TABLES = {
    "failed_jobs",
    "notifications",
    "message_deliveries",
    "webhook_endpoints",
    "webhook_events",
    "webhook_attempts",
    "admin_sessions",
    "admin_login_attempts",
    "idempotency_keys",
    "scheduled_messages",
}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(normalize_url(url, asynchronous=False))


def _tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _drift(url: str) -> list[Any]:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _revisions() -> list[str]:
    """Oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_the_chain_is_linear_and_dated() -> None:
    revisions = _revisions()
    assert revisions[:4] == ["20260115000000", "20260116000000", "20260117000000", "20260118000000"]
    assert "20261201000500" in revisions
    assert revisions == sorted(revisions), "dated ids, applied in date order"
    assert revisions[-1] == head_revision()
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, "one chain, no branches"


def test_whole_chain_up_and_down(empty_database_url: str) -> None:
    url = empty_database_url
    assert pending_message(url) is not None
    upgrade(url)
    assert current_revision(url) == head_revision()
    assert pending_message(url) is None
    assert _tables(url) >= OWN_TABLES
    downgrade(url, "base")
    assert current_revision(url) is None
    assert _tables(url) == set()
    upgrade(url)
    assert _drift(url) == []


def test_each_step_up_and_down(empty_database_url: str) -> None:
    url = empty_database_url
    revisions = _revisions()
    for revision in revisions:
        upgrade(url, revision)
        assert current_revision(url) == revision
    for previous in reversed([None, *revisions[:-1]]):
        downgrade(url, previous or "base")
        assert current_revision(url) == previous


def test_no_drift_between_models_and_migrations(database_url: str) -> None:
    assert _drift(database_url) == []
    engine = _engine(database_url)
    try:
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("failed_jobs")}
    finally:
        engine.dispose()
    assert {
        "ix_failed_jobs_queue_name",
        "ix_failed_jobs_job_name",
        "ix_failed_jobs_created_at",
        "ix_failed_jobs_queue_name_id",
        "ix_failed_jobs_job_name_id",
        "ix_failed_jobs_status_id",
    } <= indexes


def test_envoi_migrate_works_from_another_directory(empty_database_url: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "DATABASE_URL": empty_database_url}
    envoi = Path(sys.executable).with_name("envoi")
    command = [str(envoi)] if envoi.exists() else [sys.executable, "-m", "envoi"]
    done = subprocess.run([*command, "migrate"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Database is up to date." in done.stdout
    assert current_revision(empty_database_url) == head_revision()
    again = subprocess.run([*command, "migrate"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def test_inapp_rows_written_before_read_as_the_originals_after_20261201000500(
    empty_database_url: str,
) -> None:
    """Rows the older code wrote (type INAPP, the JSON text `null`) are fixed in place; down, the type
    goes back (SQL NULL metadata stays: the older code read it as it read `null`)."""
    url = empty_database_url
    upgrade(url, "20260118000000")
    insert = sa.text(
        "INSERT INTO notifications (id, user_id, type, status, title, message, metadata, created_at,"
        " updated_at) VALUES (:id, 'u1', :type, 'SENT', 't', 'm', :metadata, :at, :at)"
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert, {"id": "01A", "type": "INAPP", "metadata": "null", "at": at})
            conn.execute(
                insert, {"id": "01B", "type": "INAPP", "metadata": '{"notificationId": "n1"}', "at": at}
            )
            conn.execute(insert, {"id": "01C", "type": "EMAIL", "metadata": None, "at": at})
        read = sa.text("SELECT id, type, metadata IS NULL FROM notifications ORDER BY id")
        with engine.connect() as conn:
            assert [tuple(r)[2] for r in conn.execute(read)] == [False, False, True], "JSON null is not NULL"
        upgrade(url, "20261201000500")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(read)] == [
                ("01A", "IN_APP", True),
                ("01B", "IN_APP", False),
                ("01C", "EMAIL", True),
            ]
        downgrade(url, "20260118000000")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(read)] == [
                ("01A", "INAPP", True),
                ("01B", "INAPP", False),
                ("01C", "EMAIL", True),
            ]
    finally:
        engine.dispose()
