"""Settings: one pydantic-settings class read from the environment (and an optional `.env`).

Every variable named in the docs lives here, so that an invalid value stops start-up with one line
naming it (`load_settings`). Secrets never show in a repr, a str, an error or a log line: tokens and
passwords are `SecretStr`, and a URL setting that carries a password (`REDIS_URL`, `DATABASE_URL`,
`ALERT_WEBHOOK_URL`…) is shown with it replaced by `***` (`redact_url`); validation errors never
quote the value they refuse.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    AnyHttpUrl,
    AnyUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url

from envoi.errors import ConfigError

#: Locales for which templates exist.
LOCALES = ("fr", "en")


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class EmailProvider(StrEnum):
    SMTP = "smtp"
    #: Writes `.eml` files under OUTBOX_DIR: the `make dev` default, nothing leaves the machine.
    CONSOLE = "console"


_QUERY_SECRET = re.compile(r"^(?:password|passwd|pass|secret|token|api_?key|sig|signature)$", re.IGNORECASE)
#: URL settings whose path is the credential (a Slack or Teams webhook): only scheme and host are shown.
SECRET_PATH_URLS = frozenset({"alert_webhook_url"})


def redact_url(value: str, *, hide_path: bool = False) -> str:
    """A URL as it may be shown: the password in its userinfo and secret-looking query parameters
    (`password=`, `token=`…) replaced by `***`; with `hide_path`, everything after the host too."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "***"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}" if at and ":" in userinfo else parts.netloc
    if hide_path:
        rest = "/***" if parts.path.strip("/") or parts.query else ""
        return f"{parts.scheme}://{netloc}{rest}"
    pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
    query = "&".join(f"{k}=***" if _QUERY_SECRET.match(k) else f"{k}{sep}{v}" for k, sep, v in pairs)
    if netloc == parts.netloc and query == parts.query:
        return value  # nothing to hide: as given (urlunsplit would turn sqlite:/// into sqlite:/)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _host_list(value: Any) -> Any:
    """`a.example, b.example` as the environment gives it; a list as code gives it."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: A comma-separated list read from the environment (`NoDecode`: not parsed as JSON).
CommaList = Annotated[list[str], NoDecode]


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

    def connection_kwargs(self, *, connect_timeout_s: float) -> dict[str, Any]:
        """Keyword arguments for `redis.asyncio.Redis` (and bullmq's dict connection).

        `socket_timeout=None`: redis-py 8 defaults to 5 s, which cuts the worker's blocking wait for jobs
        (late pickups, slow crash recovery); commands are bounded elsewhere.
        """
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": None,
            "socket_connect_timeout": connect_timeout_s,
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
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # A raw ValidationError (from `Settings(...)` rather than `load_settings`) must not quote a URL
        # with its password either.
        hide_input_in_errors=True,
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

    # --- database --------------------------------------------------------------------------------
    database_url: str = "sqlite:///./var/envoi.db"

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
    #: How long a SENDING ledger row belongs to the worker that claimed it.
    delivery_lease_s: float = Field(300, gt=0)

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
    #: Host names (or addresses) the API answers to; empty means ENVOI_HOST, localhost, 127.0.0.1, ::1 and
    #: API_URL's host. `*` turns the check off (a proxy in front checks Host itself).
    envoi_allowed_hosts: CommaList = Field(default_factory=list)
    #: Peers whose X-Forwarded-Proto and X-Forwarded-For are believed (addresses or networks; `*`: all).
    forwarded_allow_ips: CommaList = Field(default_factory=lambda: ["127.0.0.1"])
    #: `metadata` and a whole job's data, as compact UTF-8 JSON: larger is a 422 / a permanent error.
    max_metadata_bytes: int = Field(16 * 1024, gt=0)
    max_job_data_bytes: int = Field(1024 * 1024, gt=0)
    #: Admin page sign-in attempts per client address within ADMIN_LOGIN_WINDOW_S; more get 429.
    admin_login_max_attempts: int = Field(10, ge=1)
    admin_login_window_s: float = Field(60, gt=0)
    #: How long an admin page session lasts before the token is asked again.
    admin_session_max_age_s: int = Field(12 * 3600, gt=0)
    alert_webhook_url: AnyHttpUrl | None = None
    alert_min_interval_s: float = Field(300, ge=0)

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)}")
        return value

    # URL validators never quote the value: it may carry a password.
    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("must start with redis:// or rediss://")
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number in 0-65535
        except ValueError:
            raise ValueError("has a port that is not a number between 1 and 65535") from None
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        try:
            make_url(value)
        except Exception:
            # SQLAlchemy's own message quotes the URL, password included.
            raise ValueError("is not a valid database URL") from None
        return value

    @field_validator("envoi_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        return _host_list(value)

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_ips(cls, value: Any) -> Any:
        return _host_list(value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError("entries must be IP addresses, networks (10.0.0.0/8) or *") from None
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

    @cached_property
    def allowed_hosts(self) -> frozenset[str]:
        """Host names the API answers to, lower case, without brackets or port (`*`: any)."""
        if self.envoi_allowed_hosts:
            names = list(self.envoi_allowed_hosts)
        else:
            names = ["localhost", "127.0.0.1", "::1"]
            # 0.0.0.0 is where envoi listens, not a name anyone should reach it by (browsers once
            # sent pages' requests for http://0.0.0.0 to the local machine).
            if self.envoi_host.strip("[]") not in ("0.0.0.0", "::"):  # noqa: S104 -- compared, not bound
                names.append(self.envoi_host)
            api_host = urlsplit(self.api_url).hostname
            if api_host:
                names.append(api_host)
        return frozenset(name.strip("[]").lower() for name in names)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() of the settings: SecretStr hides itself; a URL hides its password here.
        for name, value in super().__repr_args__():
            if isinstance(value, AnyUrl) or (isinstance(value, str) and "://" in value):
                yield name, redact_url(str(value), hide_path=name in SECRET_PATH_URLS)
            else:
                yield name, value


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one `ConfigError` line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        # `msg` only: pydantic's `input` (and str(exc)) would quote the value, a password perhaps.
        for error in exc.errors(include_input=False, include_url=False):
            variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
            lines.append(f"Invalid setting {variable}: {error['msg']}")
        raise ConfigError("; ".join(lines)) from None
    except SettingsError as exc:
        # A value the environment source could not decode; its message names the field, not the value.
        raise ConfigError(f"Invalid setting: {exc}") from None
