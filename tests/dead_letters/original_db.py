"""The original NestJS system's PostgreSQL database, as its Prisma schema makes it (`prisma db push`).

`original_database_url` is a fresh database (not a schema: the original's tables sit in `public`, as in
production) holding the three tables whose names envoi also uses, with the DDL Prisma generates for
`model FailedJob` (`@@map("failed_jobs")`), `model MessageDelivery` (`@@map("message_deliveries")`) and
`model Notification`: camelCase columns, text ids, `timestamp(3)` without time zone, `jobData` as text.
Tests get it from the `original_database_url` fixture (tests/dead_letters/conftest.py), skipped with the
reason without TEST_DATABASE_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ORIGINAL_DDL = [
    """CREATE TABLE "failed_jobs" (
        "id" TEXT NOT NULL,
        "queueName" TEXT NOT NULL,
        "jobName" TEXT NOT NULL,
        "jobData" TEXT NOT NULL,
        "errorMessage" TEXT NOT NULL,
        "jobId" TEXT,
        "attemptsMade" INTEGER NOT NULL DEFAULT 0,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,
        CONSTRAINT "failed_jobs_pkey" PRIMARY KEY ("id"))""",
    'CREATE INDEX "failed_jobs_queueName_idx" ON "failed_jobs"("queueName")',
    'CREATE INDEX "failed_jobs_jobName_idx" ON "failed_jobs"("jobName")',
    'CREATE INDEX "failed_jobs_createdAt_idx" ON "failed_jobs"("createdAt")',
    """CREATE TABLE "message_deliveries" (
        "id" TEXT NOT NULL,
        "organizationId" TEXT,
        "provider" TEXT NOT NULL,
        "channel" TEXT NOT NULL,
        "to" TEXT NOT NULL,
        "templateKey" TEXT,
        "payloadHash" TEXT NOT NULL,
        "status" TEXT NOT NULL DEFAULT 'PENDING',
        "providerMessageId" TEXT,
        "errorCode" TEXT,
        "errorMessage" TEXT,
        "sentAt" TIMESTAMP(3),
        "deliveredAt" TIMESTAMP(3),
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,
        "metadataJson" TEXT,
        CONSTRAINT "message_deliveries_pkey" PRIMARY KEY ("id"))""",
    """CREATE TABLE "Notification" (
        "id" TEXT NOT NULL,
        "userId" TEXT,
        "type" TEXT NOT NULL,
        "status" TEXT NOT NULL DEFAULT 'PENDING',
        "title" TEXT NOT NULL,
        "message" TEXT NOT NULL,
        "recipientEmail" TEXT,
        "recipientPhone" TEXT,
        "metadataJson" TEXT,
        "sentAt" TIMESTAMP(3),
        "readAt" TIMESTAMP(3),
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,
        CONSTRAINT "Notification_pkey" PRIMARY KEY ("id"))""",
]

ORIGINAL_TABLES = {"failed_jobs", "message_deliveries", "Notification"}


@contextmanager
def original_database() -> Iterator[str]:
    """A fresh database holding the original's tables; dropped on exit. Skips without TEST_DATABASE_URL."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL not set: the original system's database is PostgreSQL")
    name = f"klozd_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(base)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = sync_engine(url)
    with engine.begin() as conn:
        for statement in ORIGINAL_DDL:
            conn.execute(sa.text(statement))
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _admin_engine(base: str) -> sa.Engine:
    url = make_url(base).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def sync_engine(url: str) -> sa.Engine:
    return sa.create_engine(make_url(url).set(drivername="postgresql+psycopg"))


def original_row(n: int, **overrides: Any) -> dict[str, Any]:
    """A row as the original's `FailedJobService.recordFailedJob` writes it."""
    row: dict[str, Any] = {
        "id": f"clx{n:04d}orig{'a' * 14}",
        "queueName": "notifications",
        "jobName": "SEND_EMAIL",
        "jobData": f'{{"to":"lead{n}@example.com","subject":"Relance {n}","html":"<p>{n}</p>"}}',
        "errorMessage": f"Resend API error: 422 invalid recipient {n}",
        "jobId": str(1000 + n),
        "attemptsMade": 0,
        "createdAt": datetime(2025, 11, 1, 12, 0, n % 60),
        "updatedAt": datetime(2025, 11, 1, 12, 0, n % 60),
    }
    row.update(overrides)
    return row


def seed_original(url: str, rows: list[dict[str, Any]]) -> None:
    columns = ", ".join(f'"{c}"' for c in rows[0])
    values = ", ".join(f":{c}" for c in rows[0])
    engine = sync_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'INSERT INTO public."failed_jobs" ({columns}) VALUES ({values})'), rows)
    engine.dispose()


def original_rows(url: str) -> list[tuple[Any, ...]]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text('SELECT * FROM public."failed_jobs" ORDER BY "id"')).all()
    engine.dispose()
    return [tuple(row) for row in found]


def tables_in(url: str, schema: str) -> set[str]:
    engine = sync_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()
