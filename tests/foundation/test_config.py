"""Settings: read from the environment, invalid values stop start-up with one line naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from envoi.config import Settings, load_settings
from envoi.errors import ConfigError


def make(**env: str) -> Settings:
    return load_settings(_env_file=None, **{k.lower(): v for k, v in env.items()})


def test_defaults_match_the_documented_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "QUEUE_ENABLED",
        "DATABASE_URL",
        "REDIS_PREFIX",
        "DATABASE_SCHEMA",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.queue_enabled is True
    assert (settings.redis.host, settings.redis.port, settings.redis.tls) == ("localhost", 6379, False)
    assert settings.redis_prefix == "bull"
    assert settings.redis_connect_timeout_ms == 1000
    assert settings.database_url == "sqlite:///./var/envoi.db"
    assert (settings.job_attempts, settings.job_backoff_delay_ms) == (5, 30000)
    assert settings.worker_concurrency == 5
    assert (settings.worker_lock_duration_ms, settings.worker_stalled_interval_ms) == (30000, 30000)
    assert settings.worker_shutdown_timeout_s == 30
    assert settings.database_schema is None, "the search_path decides: public on a fresh database"
    assert make(DATABASE_SCHEMA="").database_schema is None
    assert make(DATABASE_SCHEMA="envoi").database_schema == "envoi"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_ENABLED", "false")
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_TLS", "true")
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.queue_enabled is False
    assert str(settings.redis) == "rediss://cache.internal:6380/0"


def test_redis_url_wins_and_rediss_means_tls() -> None:
    settings = make(REDIS_URL="rediss://user:s3cret@redis.example:6390/2", REDIS_HOST="ignored")
    target = settings.redis
    assert (target.host, target.port, target.db, target.tls) == ("redis.example", 6390, 2, True)
    assert (target.username, target.password) == ("user", "s3cret")
    kwargs = target.connection_kwargs(connect_timeout_s=1)
    assert kwargs["ssl"] is True and kwargs["socket_timeout"] is None


def test_passwords_never_show_in_reprs() -> None:
    settings = make(
        REDIS_URL="redis://:hunter2@localhost:6379/0",
        SMTP_PASSWORD="smtp-secret",
        TWILIO_AUTH_TOKEN="tw-secret",
    )
    shown = repr(settings) + str(settings.redis) + repr(settings.redis)
    for secret in ("smtp-secret", "tw-secret"):
        assert secret not in shown
    assert "hunter2" not in str(settings.redis)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_PORT": "not-a-port"}, "REDIS_PORT"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT"),
        ({"QUEUE_ENABLED": "maybe"}, "QUEUE_ENABLED"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"JOB_ATTEMPTS": "0"}, "JOB_ATTEMPTS"),
        ({"SMTP_SECURITY": "tls-ish"}, "SMTP_SECURITY"),
        ({"DEFAULT_LOCALE": "de"}, "DEFAULT_LOCALE"),
        # Created and set as search_path by `envoi migrate`: only plain identifiers, never SQL.
        ({"DATABASE_SCHEMA": 'envoi"; DROP SCHEMA public; --'}, "DATABASE_SCHEMA"),
        ({"DATABASE_SCHEMA": "a" * 64}, "DATABASE_SCHEMA"),
    ],
)
def test_invalid_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^Invalid setting {variable}: "):
        make(**env)


def test_enabling_sms_without_credentials_is_refused() -> None:
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        make(SMS_ENABLED="true")


def test_cli_stops_with_one_clear_line_and_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envoi", "migrate"],
        env={"PATH": "/usr/bin:/bin", "REDIS_PORT": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "envoi: Invalid setting REDIS_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]
