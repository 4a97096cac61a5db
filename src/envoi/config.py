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
import socket
from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import phonenumbers
from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    AnyUrl,
    DirectoryPath,
    EmailStr,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url

from envoi.addresses import email_address
from envoi.errors import ConfigError
from envoi.quiet_hours import QuietHours

#: Locales for which templates exist.
LOCALES = ("fr", "en")
#: A PostgreSQL schema name envoi accepts (DATABASE_SCHEMA, `--from-schema`): unquoted, at most 63 bytes.
SCHEMA_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

#: A duration as people write it: a number and a unit, `1500ms`, `90s`, `15m`, `2h`, `3d` (ASCII digits).
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: No duration envoi reads is longer.
MAX_DURATION = timedelta(days=100 * 365)


def is_duration(text: str) -> bool:
    return _DURATION.match(text.strip().lower()) is not None


def parse_duration(text: str, *, bare: str | None = "s", whole: bool = False) -> timedelta:
    """The one grammar of durations in settings and queries: a number and a unit; a bare number counts
    in `bare` units (refused when `bare` is None); `whole` refuses fractions. ValueError otherwise, and
    past 100 years."""
    match = _DURATION.match(text.strip().lower())
    if match is None or (match.group(2) is None and bare is None) or (whole and "." in match.group(1)):
        raise ValueError(f"{text.strip()!r} is not a duration such as 90s, 15m, 2h or 3d")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or str(bare)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError("must be at most 100 years")
    return timedelta(seconds=seconds)


#: A dotted module path, as `import` takes it.
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """`"1d,3d,6d"` -> the steps' delays (whole numbers with their unit), each later than the one
    before."""
    steps = tuple(parse_duration(part, bare=None, whole=True) for part in text.split(","))
    if any(step <= timedelta(0) for step in steps):
        raise ValueError("each step must be longer than zero (such as 1d,3d,6d)")
    if any(later <= earlier for earlier, later in pairwise(steps)):
        raise ValueError("each step must come later than the one before (such as 1d,3d,6d)")
    return steps


#: The shortest UNSUBSCRIBE_SECRET accepted: an HMAC key guessable in less is no signature.
MIN_SECRET_LENGTH = 32

#: A delivery's lease over the worker's lock (`Settings.delivery_lease_s`).
LEASE_OVER_LOCK = 1.25

#: SQLAlchemy's own pool size, kept for a process running fewer jobs at once (`Settings.database_pool`).
DEFAULT_DATABASE_POOL = 5


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class EmailProvider(StrEnum):
    SMTP = "smtp"
    #: Resend's HTTP API (RESEND_API_KEY).
    RESEND = "resend"
    #: SendGrid's v3 HTTP API (SENDGRID_API_KEY).
    SENDGRID = "sendgrid"
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

#: Providers a RATE_LIMITS bucket may name (the part before an optional `:sender`).
RATE_LIMIT_PROVIDERS = ("twilio", "resend", "sendgrid", "smtp", "console")
#: SMS providers envoi has a channel for (SMS_PROVIDERS).
SMS_PROVIDER_NAMES = ("twilio",)
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")
_RATE_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def parse_rate_limits(value: Any) -> Any:
    """`twilio=1/s,twilio:+33612345678=1/s,resend=10/s` -> {bucket: sends per second}. A bucket is a
    provider, or `provider:sender` (a Twilio number, an email From address). Raises one clear line."""
    if not isinstance(value, str):
        return value
    limits: dict[str, float] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        bucket, eq, rate = entry.partition("=")
        bucket = bucket.strip()
        provider = bucket.split(":", 1)[0].lower()
        match = _RATE.match(rate)
        if not eq or not match:
            raise ValueError(f"{entry!r} is not BUCKET=N/s (or N/m, N/h), e.g. twilio=1/s")
        if provider not in RATE_LIMIT_PROVIDERS:
            raise ValueError(f"{provider!r} is not a provider ({', '.join(RATE_LIMIT_PROVIDERS)})")
        if bucket in limits:
            raise ValueError(f"{bucket!r} is given twice")
        per_s = float(match.group(1)) / _RATE_UNIT_S[match.group(2)]
        if per_s <= 0:
            raise ValueError(f"{entry!r}: the rate must be above zero")
        limits[provider + bucket[len(provider) :]] = per_s
    return limits


class TextProvider(StrEnum):
    """Where SMS and WhatsApp messages go."""

    TWILIO = "twilio"
    #: Writes a `.txt` file per message under OUTBOX_DIR: the `make dev` default, nothing leaves the machine.
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


#: Why REDIS_CLUSTER=true stops envoi at start (docs/operations.md, "Redis Cluster").
REDIS_CLUSTER_REFUSAL = (
    "REDIS_CLUSTER=true is not supported: bullmq's addBulk, which envoi enqueues with, runs its scripts "
    "(EVALSHA) in a pipeline that redis-py's RedisCluster refuses (redis/redis-py#2914); use Redis "
    "Sentinel (REDIS_SENTINELS) or one primary"
)


def parse_sentinels(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` -> ((host, port), ...); ValueError naming the bad entry (no secret in it)."""
    found: list[tuple[str, int]] = []
    for entry in value.split(","):
        entry = entry.strip()
        host, _, port = entry.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"expects host:port[,host:port...], with a port in 1-65535; got {entry!r}")
        found.append((host, int(port)))
    return tuple(found)


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
        sentinels: tuple[tuple[str, int], ...] = (),
        sentinel_master: str | None = None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.tls, self.ca_file = tls, ca_file
        #: REDIS_SENTINELS parsed: when set, the master is asked of them (host and port above are unused).
        self.sentinels, self.sentinel_master = sentinels, sentinel_master

    def with_sentinels(self, sentinels: tuple[tuple[str, int], ...], master: str | None) -> RedisTarget:
        self.sentinels, self.sentinel_master = sentinels, master
        return self

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
        if self.sentinels:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"{scheme}+sentinel://{hosts}/{self.sentinel_master}/{self.db}"
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
    #: Redis Sentinel: `host:port,host:port,...`; with REDIS_SENTINEL_MASTER, every client asks them
    #: where the master is (REDIS_URL/HOST/PORT then only give the username, password, db and TLS).
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = None
    #: Refused at start (`REDIS_CLUSTER_REFUSAL`): a setting so that the refusal says why.
    redis_cluster: bool = False

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
    #: Modules declaring the application's jobs (`@job`), imported by `envoi worker` and `envoi api`:
    #: "myapp.jobs,other.module" (NoDecode: a comma-separated list, not JSON).
    envoi_jobs: Annotated[tuple[str, ...], NoDecode] = ()
    #: Minutes of completed/failed counts per minute that bullmq keeps per queue (its `metrics` option,
    #: drawn on the admin page); 0 turns the counting off.
    worker_throughput_minutes: int = Field(24 * 60, ge=0, le=7 * 24 * 60)
    #: How long the admin search finds a recipient's delayed and failed jobs (a hashed index in Redis,
    #: `envoi.queue.recipients`); 0 keeps no index.
    recipient_index_days: int = Field(30, ge=0, le=3650)

    #: How often the worker writes its heartbeat (`envoi worker --health` reads it).
    worker_heartbeat_interval_s: float = Field(10, gt=0)
    #: `envoi worker --processes N`: a worker process that dies is started again after this delay, doubled
    #: at each death in a row up to WORKER_RESTART_BACKOFF_MAX_S (a crash loop does not spin); a process
    #: that ran a minute starts the count afresh.
    worker_restart_backoff_s: float = Field(1, gt=0)
    worker_restart_backoff_max_s: float = Field(30, gt=0)

    # --- database --------------------------------------------------------------------------------
    database_url: str = "sqlite:///./var/envoi.db"
    #: PostgreSQL schema for envoi's tables (beside another application's, e.g. the original system's
    #: `failed_jobs`). Unset: the connection's search_path (`public` on a fresh database). SQLite: ignored.
    database_schema: str | None = Field(None, pattern=SCHEMA_NAME_PATTERN)
    #: PostgreSQL: how long opening a connection may take (whole seconds, at least 2, as libpq counts).
    database_connect_timeout_s: float = Field(5, gt=0)
    #: PostgreSQL: the server cancels a statement running longer; SQLite: how long a write waits on a lock.
    database_statement_timeout_s: float = Field(30, gt=0)
    #: PostgreSQL: connections each of a process's two pools keeps once opened (10 more at a peak, closed
    #: after use). Unset: the larger of 5 and WORKER_CONCURRENCY (`database_pool`).
    database_pool_size: int | None = Field(None, ge=1, le=1000)

    # --- email -----------------------------------------------------------------------------------
    #: Unset: Resend when RESEND_API_KEY is set, else SendGrid when SENDGRID_API_KEY is, else SMTP (the
    #: original system's choice by key); always a provider once validated.
    email_provider: EmailProvider | None = None
    #: Ordered failover list (`resend,smtp`); empty means EMAIL_PROVIDER alone.
    email_providers: Annotated[list[EmailProvider], NoDecode] = Field(default_factory=list)
    #: Ordered SMS providers (only `twilio` has a channel today).
    sms_providers: CommaList = Field(default_factory=lambda: ["twilio"])
    #: Sends per second per provider or `provider:sender`, shared by every worker (Redis).
    rate_limits: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    #: The longest a send waits for its rate-limit slot inside a job before failing transiently.
    rate_limit_max_wait_s: float = Field(20, gt=0)
    #: A provider's circuit opens after this many transient failures in a row (failover skips it).
    provider_breaker_threshold: int = Field(5, ge=1)
    provider_breaker_cooldown_s: float = Field(30, gt=0)
    email_from: str = "envoi <no-reply@localhost>"
    email_reply_to: str | None = None
    #: Refuse recipients on names that cannot be delivered on the internet (`.test`, `.local`, `localhost`).
    email_strict_domains: bool = False
    resend_api_key: SecretStr | None = None
    resend_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.resend.com")
    sendgrid_api_key: SecretStr | None = None
    sendgrid_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.sendgrid.com")
    email_api_timeout_s: float = Field(15, gt=0)
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_timeout_s: float = Field(30, gt=0)
    #: Connections kept open to the SMTP server, at most (sends beyond wait for one to come free).
    smtp_pool_size: int = Field(10, ge=1, le=1000)
    #: A kept connection unused this long is closed (QUIT); most servers drop idle clients after 60 s+.
    smtp_pool_idle_s: float = Field(30, gt=0)
    #: Messages sent over one connection before it is closed and another opened; 1 is one connection
    #: per message (no reuse).
    smtp_pool_max_messages: int = Field(100, ge=1)
    outbox_dir: Path = Path("./var/outbox")

    # --- SMS and WhatsApp -----------------------------------------------------------------------
    #: `twilio`, or `console` (the `make dev` default): written under OUTBOX_DIR, nothing sent.
    sms_provider: TextProvider = TextProvider.TWILIO
    whatsapp_provider: TextProvider = TextProvider.TWILIO
    #: Unset: on when the channel's provider is configured (Twilio's credentials and the channel's
    #: sender, as the original system sends whenever it can; the console always); `false` turns the
    #: channel off. Always a bool once validated.
    sms_enabled: bool | None = None
    whatsapp_enabled: bool | None = None
    twilio_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    #: SMS_FROM is the original system's other name for it (TWILIO_PHONE_NUMBER wins, as there).
    twilio_phone_number: str | None = Field(
        None, validation_alias=AliasChoices("twilio_phone_number", "sms_from")
    )
    twilio_whatsapp_number: str | None = Field(
        None, validation_alias=AliasChoices("twilio_whatsapp_number", "whatsapp_from")
    )
    twilio_timeout_s: float = Field(15, gt=0)
    #: Region national phone numbers are read in (`FR`: `06 98 76 54 32`); unset: international only.
    default_phone_region: str | None = None

    # --- notifications ---------------------------------------------------------------------------
    default_locale: str = "fr"
    default_timezone: str = "Europe/Paris"
    #: The product's front end, for links in messages (verification, invitation, appointments).
    frontend_url: str = "http://localhost:3000"
    #: A folder whose files replace the built-in templates of the same relative name (`en/verification.html`).
    templates_dir: DirectoryPath | None = None
    #: The product's name in every message; EMAIL_FROM's display name when unset, else "envoi".
    brand_name: str | None = Field(None, min_length=1, max_length=100)
    brand_url: AnyHttpUrl | None = None
    brand_logo_url: AnyHttpUrl | None = None
    support_email: EmailStr | None = None
    #: Lifetimes stated in the messages (the product enforces them; envoi only prints them).
    verification_code_ttl_min: int = Field(15, ge=1, le=7 * 24 * 60)
    invitation_ttl_days: int = Field(7, ge=1, le=365)
    #: When the abandon-recovery emails go out, counted from the request: one email per step.
    abandon_recovery_schedule: str = "1d,3d,6d"

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

    # --- recipients (docs/recipients.md) ---------------------------------------------------------
    #: Signs the one-click unsubscribe links (HMAC-SHA256), at least 32 characters; unset: marketing
    #: emails go without an unsubscribe link (a warning at start) and /v1/unsubscribe answers 404.
    unsubscribe_secret: SecretStr | None = None
    #: When marketing messages wait, in the recipient's time zone: `21:00-08:00`; empty: never.
    quiet_hours: str = ""
    #: In-app notifications still unread this long after the first are summed up in one email; unset: off.
    digest_window: timedelta | None = None

    #: Why SMS or WhatsApp is off, by channel name (`sms`, `whatsapp`), set when the flags are resolved.
    _channels_off: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("email_provider", mode="before")
    @classmethod
    def _provider_case(cls, value: Any) -> Any:
        # The original system writes RESEND and SENDGRID.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("email_providers", mode="before")
    @classmethod
    def _provider_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("sms_providers")
    @classmethod
    def _sms_providers_known(cls, value: list[str]) -> list[str]:
        names = [part.strip().lower() for part in value if part.strip()]
        for name in names:
            if name not in SMS_PROVIDER_NAMES:
                raise ValueError(f"{name!r} is not an SMS provider ({', '.join(SMS_PROVIDER_NAMES)})")
        return names or list(SMS_PROVIDER_NAMES)

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rate_limits(cls, value: Any) -> Any:
        return parse_rate_limits(value)

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if not value:
            return None
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a two-letter region code such as FR, BE or US")
        return region

    @field_validator("email_reply_to")
    @classmethod
    def _reply_to_address(cls, value: str | None) -> str | None:
        # Checked at start: a bad one would have every email refused by the provider, one by one.
        if value:
            email_address(value)
        return value or None

    # --- outbound webhooks (envoi.webhooks) ------------------------------------------------------
    #: A delivery is a failure unless a 2xx arrives within this (connect, send, answer, all included).
    webhook_timeout_s: float = Field(10, gt=0)
    webhook_job_attempts: int = Field(8, ge=1)
    #: Exponential backoff base: 10 min, then 20, 40, 80, 160, 320, 640 (about 21 h over 8 attempts).
    webhook_backoff_delay_ms: int = Field(600_000, ge=0)
    #: An endpoint failing for this long (no 2xx since) is disabled at its next failure.
    webhook_disable_after: timedelta = timedelta(days=3)
    webhook_allow_http: bool = False
    #: Allow loopback, private, link-local... addresses (cloud metadata addresses stay refused).
    webhook_allow_private: bool = False

    # --- tracing (envoi.tracing, docs/operations.md) ---------------------------------------------
    #: OpenTelemetry spans (request, enqueue, job, provider call); needs the `otel` extra.
    otel_enabled: bool = False
    #: OpenTelemetry's own switch, honoured: true turns envoi's spans off whatever OTEL_ENABLED says.
    otel_sdk_disabled: bool = False
    #: The span exporter when no tracer provider is set by the application: an installed
    #: `opentelemetry_traces_exporter` name (`console` with the SDK, `otlp` with opentelemetry-exporter-otlp).
    otel_traces_exporter: str = Field("otlp", min_length=1)

    @property
    def tracing_enabled(self) -> bool:
        return self.otel_enabled and not self.otel_sdk_disabled

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)}")
        return value

        return value

    @field_validator("webhook_disable_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        # `3d`, `72h`, `90` (seconds); anything else is left to pydantic (ISO 8601 `P3D`).
        return parse_duration(value) if isinstance(value, str) and is_duration(value) else value

    @field_validator("webhook_disable_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration (seconds, or 90s, 45m, 72h, 3d)")
        return value

    @field_validator("envoi_jobs", mode="before")
    @classmethod
    def _module_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list | tuple):
            value = tuple(part for part in value if part)
            bad = [part for part in value if not isinstance(part, str) or not _MODULE_PATH.match(part)]
            if bad:
                raise ValueError(
                    f"not a module path: {', '.join(map(repr, bad))} (expected myapp.jobs,other.module)"
                )
        return value

    @field_validator("unsubscribe_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        window = QuietHours.parse(value)
        return str(window) if window else ""

    @field_validator("digest_window", mode="before")
    @classmethod
    def _digest_window(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("", "0", "off", "false"):
                return None
            return parse_duration(text)
        return value

    @field_validator("digest_window")
    @classmethod
    def _positive_window(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration (90s, 15m, 2h), or empty for no digest")
        return value

    @field_validator("abandon_recovery_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
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

    @field_validator("redis_sentinels", "redis_sentinel_master", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_sentinels(value)
        return value

    @model_validator(mode="after")
    def _redis_topology(self) -> Settings:
        if self.redis_cluster:
            raise ValueError(REDIS_CLUSTER_REFUSAL)
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            missing = "REDIS_SENTINEL_MASTER" if self.redis_sentinels else "REDIS_SENTINELS"
            given = "REDIS_SENTINELS" if self.redis_sentinels else "REDIS_SENTINEL_MASTER"
            raise ValueError(f"{given} is set but {missing} is not: Sentinel needs both")
        return self

    @field_validator("database_schema", mode="before")
    @classmethod
    def _blank_schema(cls, value: Any) -> Any:
        return None if value == "" else value

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

    @property
    def twilio_sms(self) -> bool:
        """SMS goes out through Twilio."""
        return bool(self.sms_enabled) and self.sms_provider is TextProvider.TWILIO

    @property
    def twilio_whatsapp(self) -> bool:
        return bool(self.whatsapp_enabled) and self.whatsapp_provider is TextProvider.TWILIO

    @model_validator(mode="after")
    def _email_provider_keyed(self) -> Settings:
        if self.email_providers:
            if len(set(self.email_providers)) != len(self.email_providers):
                raise ValueError("EMAIL_PROVIDERS names a provider twice")
            self.email_provider = self.email_providers[0]
        if self.email_provider is None:
            self.email_provider = (
                EmailProvider.RESEND
                if self.resend_api_key
                else EmailProvider.SENDGRID
                if self.sendgrid_api_key
                else EmailProvider.SMTP
            )
        if not self.email_providers:
            self.email_providers = [self.email_provider]
        for provider in self.email_providers:
            key = {
                EmailProvider.RESEND: ("RESEND_API_KEY", self.resend_api_key),
                EmailProvider.SENDGRID: ("SENDGRID_API_KEY", self.sendgrid_api_key),
            }.get(provider)
            if key is not None and not key[1]:
                raise ValueError(f"EMAIL_PROVIDER={provider} but {key[0]} is not set")
        return self

    @model_validator(mode="after")
    def _twilio_channels(self) -> Settings:
        """Resolve SMS_ENABLED and WHATSAPP_ENABLED: explicit true needs everything, unset means
        "on if configured", false is off."""
        credentials = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
            )
            if not value
        ]
        refused: list[str] = []
        for channel, flag, sender, sender_name in (
            ("sms", "SMS_ENABLED", self.twilio_phone_number, "TWILIO_PHONE_NUMBER"),
            ("whatsapp", "WHATSAPP_ENABLED", self.twilio_whatsapp_number, "TWILIO_WHATSAPP_NUMBER"),
        ):
            enabled = getattr(self, f"{channel}_enabled")
            console = getattr(self, f"{channel}_provider") is TextProvider.CONSOLE
            missing = [] if console else credentials + ([] if sender else [sender_name])
            if enabled is False:
                self._channels_off[channel] = f"{flag}=false"
            elif missing and enabled:
                refused.extend(name for name in missing if name not in refused)
            elif missing:
                self._channels_off[channel] = f"not configured: {', '.join(missing)} not set"
            setattr(self, f"{channel}_enabled", enabled is not False and not missing)
        if refused:
            raise ValueError(f"SMS/WhatsApp enabled but {', '.join(refused)} not set")
        return self

    def channel_off_reason(self, channel: str) -> str | None:
        """Why `sms` or `whatsapp` is off (`SMS_ENABLED=false`, `not configured: … not set`); None when on."""
        return self._channels_off.get(channel)

    @cached_property
    def redis(self) -> RedisTarget:
        sentinels = parse_sentinels(self.redis_sentinels) if self.redis_sentinels else ()
        return self._redis_target().with_sentinels(sentinels, self.redis_sentinel_master)

    def _redis_target(self) -> RedisTarget:
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
    def abandon_recovery_steps(self) -> tuple[timedelta, ...]:
        """ABANDON_RECOVERY_SCHEDULE parsed (validated at start)."""
        return parse_schedule(self.abandon_recovery_schedule)

    @property
    def redis_connect_timeout_s(self) -> float:
        return self.redis_connect_timeout_ms / 1000

    @property
    def database_pool(self) -> int:
        """DATABASE_POOL_SIZE, else enough for every job a worker runs at once to keep its connection:
        below that, the jobs beyond the pool open and close a connection for each statement."""
        return self.database_pool_size or max(DEFAULT_DATABASE_POOL, self.worker_concurrency)

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
        # `msg` only: pydantic's `input` (and str(exc)) would quote the value, a password perhaps.
        for error in exc.errors(include_input=False, include_url=False):
            if error["loc"]:
                lines.append(f"Invalid setting {str(error['loc'][0]).upper()}: {error['msg']}")
            else:
                # A rule across settings (a provider without its key): its message names the variables.
                lines.append(error["msg"].removeprefix("Value error, "))
        raise ConfigError("; ".join(lines)) from None
    except SettingsError as exc:
        # A value the environment source could not decode; its message names the field, not the value.
        raise ConfigError(f"Invalid setting: {exc}") from None
