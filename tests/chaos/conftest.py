"""The chaos suite's stage: a private redis-server (append-only file on, so that it can be killed and
restarted), one database, the SMTP sink and the Twilio stand-in, and real `envoi worker` / `envoi api`
processes configured through their environment, as in production. Timings are shrunk through settings.

The database is PostgreSQL when TEST_DATABASE_URL is set (a schema per test), else SQLite.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.embedded_redis import EmbeddedRedis
from envoi.runtime import Envoi
from tests.conftest import _drop_schema, _postgres_schema_url
from tests.fixtures.delivery import SMS_FROM, WHATSAPP_FROM
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("TEST_DATABASE_URL")

#: Every chaos test's settings: short locks, backoffs and intervals.
CHAOS_SETTINGS: dict[str, Any] = {
    "job_backoff_delay_ms": 100,
    "worker_concurrency": 4,
    "worker_drain_delay_s": 1,
    "worker_lock_duration_ms": 2000,
    "worker_stalled_interval_ms": 1000,
    "worker_shutdown_timeout_s": 5,
    "worker_heartbeat_interval_s": 0.5,
    "redis_breaker_cooldown_ms": 500,
    "dlq_reconcile_interval_s": 1,
    "smtp_timeout_s": 60,
    "twilio_timeout_s": 10,
    "email_provider": "smtp",
    "email_from": "envoi <no-reply@envoi.test>",
    "smtp_security": "none",
    "sms_enabled": True,
    "whatsapp_enabled": False,
    "twilio_phone_number": SMS_FROM,
    "twilio_whatsapp_number": WHATSAPP_FROM,
    "api_url": "http://envoi.test",
}


@pytest.fixture
def chaos_database_url(tmp_path: Path) -> Iterator[str]:
    if not POSTGRES:
        url = f"sqlite:///{tmp_path / 'envoi.db'}"
        upgrade(url)
        yield url
        return
    schema = f"chaos_{uuid.uuid4().hex[:12]}"
    url = _postgres_schema_url(POSTGRES, schema)
    upgrade(url)
    yield url
    _drop_schema(POSTGRES, schema)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own, persisting to its append-only file (kill -9 loses nothing
    acknowledged: Redis writes the file before it answers)."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    yield server
    server.stop()


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def exit_code(self, timeout: float) -> int:
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"{self.name} still running after {timeout}s:\n{self.output()}") from None


@dataclass
class Stage:
    redis: EmbeddedRedis
    database_url: str
    smtp: SmtpSink
    twilio: TwilioServer
    tmp_path: Path
    prefix: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:8]}")
    procs: list[Proc] = field(default_factory=list)
    envois: list[Envoi] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **CHAOS_SETTINGS,
            "redis_url": self.redis.url,
            "redis_prefix": self.prefix,
            "database_url": self.database_url,
            "smtp_host": self.smtp.host,
            "smtp_port": self.smtp.port,
            "twilio_api_base_url": self.twilio.base_url,
            "twilio_account_sid": self.twilio.account_sid,
            "twilio_auth_token": self.twilio.auth_token,
            "outbox_dir": self.tmp_path / "outbox",
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def env(self, **overrides: Any) -> dict[str, str]:
        """The environment of a process configured like `settings(**overrides)`."""
        settings = self.settings(**overrides)
        values = {**CHAOS_SETTINGS, **overrides}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_", "WORKER_"))}
        env.update({name.upper(): str(value) for name, value in values.items()})
        env.update(
            REDIS_URL=str(settings.redis_url),
            REDIS_PREFIX=settings.redis_prefix,
            DATABASE_URL=settings.database_url,
            SMTP_HOST=settings.smtp_host,
            SMTP_PORT=str(settings.smtp_port),
            TWILIO_API_BASE_URL=str(settings.twilio_api_base_url),
            TWILIO_ACCOUNT_SID=str(settings.twilio_account_sid),
            TWILIO_AUTH_TOKEN=self.twilio.auth_token,
            OUTBOX_DIR=str(settings.outbox_dir),
        )
        return env

    def envoi(self, **overrides: Any) -> Envoi:
        """The test's own Envoi (a producer, and a reader of the database), closed at the end."""
        envoi = Envoi(self.settings(**overrides))
        self.envois.append(envoi)
        return envoi

    def spawn(self, *args: str, name: str | None = None, **overrides: Any) -> Proc:
        """`envoi <args>` as a process of its own, its output in a file."""
        name = name or f"{args[0]}-{len(self.procs) + 1}"
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "envoi", *args],
                env=self.env(**overrides),
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    def worker(self, **overrides: Any) -> Proc:
        return self.spawn("worker", **overrides)

    def api(self, port: int, api_key: str, **overrides: Any) -> Proc:
        return self.spawn("api", envoi_port=port, envoi_api_key=api_key, **overrides)


@pytest.fixture
async def stage(
    redis_server: EmbeddedRedis,
    chaos_database_url: str,
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
    tmp_path: Path,
) -> AsyncIterator[Stage]:
    chaos = Stage(redis_server, chaos_database_url, smtp_sink, twilio_server, tmp_path)
    try:
        yield chaos
    finally:
        for proc in chaos.procs:
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGKILL)
            proc.process.wait()
        for envoi in chaos.envois:
            await envoi.close()
