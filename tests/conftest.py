"""Fixtures shared by every test: a real Redis, a real database, settings, an Envoi, a worker.

- Redis: TEST_REDIS_URL if set, else a private redis-server on a free port for the session. Each test
  gets its own key prefix, so tests never see each other's jobs.
- Database: SQLite in the test's tmp dir and, when TEST_DATABASE_URL is set, PostgreSQL as well (each
  database test runs on both; on PostgreSQL in a schema of its own). Migrations run through Alembic.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from envoi import addresses
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.embedded_redis import EmbeddedRedis
from envoi.queue.jobs import HandlerRegistry
from envoi.runtime import Envoi
from envoi.worker import Worker

#: The SMTP sink, the Twilio, Resend and SendGrid stand-ins, and settings pointing at them (tests/fixtures/).
pytest_plugins = [
    "tests.fixtures.smtp",
    "tests.fixtures.twilio",
    "tests.fixtures.resend",
    "tests.fixtures.sendgrid",
    "tests.fixtures.delivery",
    "tests.fixtures.webhook_receiver",
    # envoi's own plugin for users' suites (`envoi_outbox`), tested in tests/testing/.
    "envoi.pytest_plugin",
]


@pytest.fixture(autouse=True)
def _default_address_rules() -> Iterator[None]:
    """Every `Envoi` sets the process-wide recipient rules from its settings (`envoi.addresses`): each
    test starts from, and leaves behind, the defaults."""
    addresses.configure(addresses.AddressRules())
    yield
    addresses.configure(addresses.AddressRules())


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Every `envoi` command applies the nearest `var/dev.env` to os.environ (`envoi.devenv`): whatever a
    test's command set there is gone before the next test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


#: The project's root: processes started by tests run from here, so that `python -m tests....` works.
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """`start(argv, env=..., cwd=...)`: a process for the test, its stdout and stderr together as text;
    whatever still runs when the test ends is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str], *, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_prefix() -> str:
    return f"envoi-test-{uuid.uuid4().hex[:12]}"


def _postgres_schema_url(base: str, schema: str) -> str:
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def _drop_schema(base: str, schema: str) -> None:
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


#: SQLite always; PostgreSQL too when TEST_DATABASE_URL names a server: every test that touches the
#: database then runs once on each (ids `[sqlite]` and `[postgresql]`).
DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it (no migrations applied)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'envoi.db'}"
        return
    base = os.environ["TEST_DATABASE_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield _postgres_schema_url(base, schema)
    _drop_schema(base, schema)


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A database migrated to the head revision."""
    upgrade(empty_database_url)
    return empty_database_url


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(redis_url: str, redis_prefix: str, database_url: str, tmp_path: Path) -> SettingsFactory:
    """Settings for a test: real Redis and database, short backoffs and intervals, no .env file."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "redis_prefix": redis_prefix,
            "database_url": database_url,
            "job_backoff_delay_ms": 50,
            "worker_drain_delay_s": 1,
            "worker_stalled_interval_ms": 1000,
            "worker_lock_duration_ms": 2000,
            "worker_shutdown_timeout_s": 10,
            "redis_breaker_cooldown_ms": 500,
            "dlq_reconcile_interval_s": 1,
            "outbox_dir": tmp_path / "outbox",
            "smtp_timeout_s": 5,
            "twilio_timeout_s": 5,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


EnvoiFactory = Callable[..., Awaitable[Envoi]]


@pytest.fixture
async def make_envoi() -> AsyncIterator[Callable[..., Envoi]]:
    """Build Envoi instances that are closed at the end of the test."""
    built: list[Envoi] = []

    def factory(settings: Settings, *, registry: HandlerRegistry | None = None) -> Envoi:
        envoi = Envoi(settings, registry=registry)
        built.append(envoi)
        return envoi

    yield factory
    for envoi in reversed(built):
        await envoi.close()


@pytest.fixture
async def envoi(make_envoi: Callable[..., Envoi], settings: Settings) -> Envoi:
    return make_envoi(settings)


@pytest.fixture
async def start_worker() -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start real bullmq workers in the test's event loop; all are closed at the end of the test."""
    started: list[Worker] = []

    async def factory(envoi: Envoi, **kwargs: Any) -> Worker:
        worker = Worker(envoi, **kwargs)
        await worker.start()
        started.append(worker)
        return worker

    yield factory
    for worker in reversed(started):
        await worker.close(timeout=5)
