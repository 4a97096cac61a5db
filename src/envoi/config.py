"""Settings: one pydantic-settings class read from the environment (and an optional `.env`).

Every variable named in the docs lives here, so that an invalid value stops start-up with one line
naming it (`load_settings`). Secrets are `SecretStr`: they never show in a repr or a log line.
"""

from __future__ import annotations

import socket
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from envoi.errors import ConfigError

#: Locales for which templates exist.
LOCALES = ("fr", "en")
#: A delivery's lease over the worker's lock (`Settings.delivery_lease_s`).
LEASE_OVER_LOCK = 1.25


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class EmailProvider(StrEnum):
    SMTP = "smtp"
    #: Writes `.eml` files under OUTBOX_DIR: the `make dev` default, nothing leaves the machine.
    CONSOLE = "console"


#: A Redis connection idle longer than this is checked with a PING before its next command.
HEALTH_CHECK_INTERVAL_S = 10
#: TCP keepalive: first probe after this idle time, then every interval, dead after that many probes.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES = 15, 5, 3


def keepalive_options() -> dict[int, int]:
    """TCP keepalive tuning, where the platform exposes it (Linux; macOS names the idle time
    TCP_KEEPALIVE): the system default waits two hours before the first probe."""
    wanted = (
        (("TCP_KEEPIDLE", "TCP_KEEPALIVE"), KEEPALIVE_IDLE_S),
        (("TCP_KEEPINTVL",), KEEPALIVE_INTERVAL_S),
        (("TCP_KEEPCNT",), KEEPALIVE_PROBES),
    )
    options: dict[int, int] = {}
    for names, value in wanted:
        option = next((getattr(socket, n) for n in names if hasattr(socket, n)), None)
        if option is not None:
            options[option] = value
    return options


class RedisTarget:
    """Where Redis is, parsed once from REDIS_URL or REDIS_HOST/PORT/...; `str()` never shows the password."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        db: int,
        username: str | None,
        password: str | None,
        tls: bool,
        ca_file: str | None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.tls, self.ca_file = tls, ca_file

    def connection_kwargs(
        self, *, connect_timeout_s: float, socket_timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for `redis.asyncio.Redis` (and bullmq's dict connection).

        Every connection notices a dead peer by itself: TCP keepalive (a host gone: ~30 s), and a PING
        before a command sent on a connection idle for HEALTH_CHECK_INTERVAL_S (a connection that went
        silent while idle is replaced before the command goes into it). Neither cuts a blocking command
        (a health check runs only before a command): `socket_timeout_s` is what bounds a read, and a
        worker's must outlast bullmq's longest blocking wait (`envoi.queue.connection`).
        """
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": connect_timeout_s,
            "socket_keepalive": True,
            "socket_keepalive_options": keepalive_options(),
            "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        }
        if self.tls:
            kwargs["ssl"] = True
            if self.ca_file:
                kwargs["ssl_ca_certs"] = self.ca_file
        return kwargs

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"

    __repr__ = __str__


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- queue and Redis -------------------------------------------------------------------------
    queue_enabled: bool = True
    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_db: int = Field(0, ge=0)
    redis_tls: bool = False
    redis_tls_ca_file: Path | None = None
    #: BullMQ's own default, so that Node producers and envoi workers see the same keys.
    redis_prefix: str = Field("bull", min_length=1)
    redis_connect_timeout_ms: int = Field(1000, gt=0)
    #: How long enqueue skips a Redis that just failed before trying it again.
    redis_breaker_cooldown_ms: int = Field(5000, gt=0)

    # --- jobs and worker -------------------------------------------------------------------------
    job_attempts: int = Field(5, ge=1)
    job_backoff_delay_ms: int = Field(30000, ge=0)
    worker_concurrency: int = Field(5, ge=1)
    worker_lock_duration_ms: int = Field(30000, gt=0)
    worker_stalled_interval_ms: int = Field(30000, gt=0)
    worker_max_stalled_count: int = Field(2, ge=0)
    worker_shutdown_timeout_s: float = Field(30, ge=0)
    #: Serve the worker's Prometheus metrics (jobs completed, failed, durations) on this port; off when unset.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    #: How long the worker blocks on Redis waiting for a job (bullmq's drainDelay), seconds.
    worker_drain_delay_s: float = Field(4, gt=0, le=10)

    #: How often the worker writes its heartbeat (`envoi worker --health` reads it).
    worker_heartbeat_interval_s: float = Field(10, gt=0)

    # --- database --------------------------------------------------------------------------------
    database_url: str = "sqlite:///./var/envoi.db"
    #: PostgreSQL: how long opening a connection may take (whole seconds, at least 2, as libpq counts).
    database_connect_timeout_s: float = Field(5, gt=0)
    #: PostgreSQL: the server cancels a statement running longer; SQLite: how long a write waits on a lock.
    database_statement_timeout_s: float = Field(30, gt=0)

    # --- email -----------------------------------------------------------------------------------
    email_provider: EmailProvider = EmailProvider.SMTP
    email_from: str = "envoi <no-reply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_timeout_s: float = Field(30, gt=0)
    outbox_dir: Path = Path("./var/outbox")

    # --- Twilio (SMS and WhatsApp) ---------------------------------------------------------------
    sms_enabled: bool = False
    whatsapp_enabled: bool = False
    twilio_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_phone_number: str | None = None
    twilio_whatsapp_number: str | None = None
    twilio_timeout_s: float = Field(15, gt=0)

    # --- notifications ---------------------------------------------------------------------------
    default_locale: str = "fr"
    default_timezone: str = "Europe/Paris"
    #: The product's front end, for links in messages (verification, invitation, appointments).
    frontend_url: str = "http://localhost:3000"

    # --- dead letters ----------------------------------------------------------------------------
    dlq_reconcile_interval_s: float = Field(60, gt=0)

    # --- HTTP API --------------------------------------------------------------------------------
    envoi_host: str = "127.0.0.1"
    envoi_port: int = Field(8000, ge=1, le=65535)
    envoi_api_key: SecretStr | None = None
    envoi_admin_token: SecretStr | None = None
    #: The public URL of the API, as Twilio sees it (status callbacks are signed over it).
    api_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = Field(256 * 1024, gt=0)
    alert_webhook_url: AnyHttpUrl | None = None
    alert_min_interval_s: float = Field(300, ge=0)

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss"):
            raise ValueError("must start with redis:// or rediss://")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _twilio_complete(self) -> Settings:
        if self.sms_enabled or self.whatsapp_enabled:
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                )
                if not value
            ]
            if self.sms_enabled and not self.twilio_phone_number:
                missing.append("TWILIO_PHONE_NUMBER")
            if self.whatsapp_enabled and not self.twilio_whatsapp_number:
                missing.append("TWILIO_WHATSAPP_NUMBER")
            if missing:
                raise ValueError(f"SMS/WhatsApp enabled but {', '.join(missing)} not set")
        return self

    @cached_property
    def redis(self) -> RedisTarget:
        if self.redis_url:
            parts = urlsplit(self.redis_url)
            path = parts.path.lstrip("/")
            return RedisTarget(
                host=parts.hostname or "localhost",
                port=parts.port or 6379,
                db=int(path) if path.isdigit() else 0,
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
                tls=parts.scheme == "rediss" or self.redis_tls,
                ca_file=str(self.redis_tls_ca_file) if self.redis_tls_ca_file else None,
            )
        return RedisTarget(
            host=self.redis_host,
            port=self.redis_port,
            db=self.redis_db,
            username=self.redis_username,
            password=self.redis_password.get_secret_value() if self.redis_password else None,
            tls=self.redis_tls,
            ca_file=str(self.redis_tls_ca_file) if self.redis_tls_ca_file else None,
        )

    @property
    def redis_connect_timeout_s(self) -> float:
        return self.redis_connect_timeout_ms / 1000

    @property
    def delivery_lease_s(self) -> float:
        """How long a SENDING ledger row belongs to the run that claimed it: derived from the worker's
        lock, never set apart from it, so that when bullmq declares a dead worker's job stalled (its lock
        expired) the row's lease is gone or about to go. A quarter longer than the lock: a live run renews
        both, and a clock a little ahead on another worker must not take over a live send."""
        return self.worker_lock_duration_ms / 1000 * LEASE_OVER_LOCK


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one `ConfigError` line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
            lines.append(f"Invalid setting {variable}: {error['msg']}")
        raise ConfigError("; ".join(lines)) from None
