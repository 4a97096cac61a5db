"""Settings: read from the environment, invalid values stop start-up with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envoi.config import Settings, load_settings
from envoi.errors import ConfigError

#: The CLI in a subprocess runs the code under test (a worktree's `src` on PYTHONPATH), not an install.
SOURCE = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


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
        RESEND_API_KEY="re_secret",
        SENDGRID_API_KEY="SG.secret",
    )
    shown = repr(settings) + str(settings) + str(settings.redis) + repr(settings.redis)
    for secret in ("smtp-secret", "tw-secret", "re_secret", "SG.secret", "hunter2"):
        assert secret not in shown
    assert "redis://:***@localhost:6379/0" in repr(settings)


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
        ({"EMAIL_PROVIDER": "mailgun"}, "EMAIL_PROVIDER"),
        ({"DEFAULT_PHONE_REGION": "France"}, "DEFAULT_PHONE_REGION"),
        ({"RESEND_API_BASE_URL": "not a url"}, "RESEND_API_BASE_URL"),
        ({"EMAIL_API_TIMEOUT_S": "0"}, "EMAIL_API_TIMEOUT_S"),
        ({"SMS_ENABLED": "perhaps"}, "SMS_ENABLED"),
        ({"EMAIL_REPLY_TO": "nope"}, "EMAIL_REPLY_TO"),
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


@pytest.mark.parametrize(
    ("provider", "key"), [("resend", "RESEND_API_KEY"), ("SENDGRID", "SENDGRID_API_KEY")]
)
def test_an_email_provider_without_its_key_stops_start_up(provider: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make(EMAIL_PROVIDER=provider)
    assert str(refused.value) == f"EMAIL_PROVIDER={provider.lower()} but {key} is not set"


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({}, "smtp"),
        ({"RESEND_API_KEY": "re_x"}, "resend"),
        ({"SENDGRID_API_KEY": "SG.x"}, "sendgrid"),
        ({"RESEND_API_KEY": "re_x", "SENDGRID_API_KEY": "SG.x"}, "resend"),  # the original's order
        ({"EMAIL_PROVIDER": "RESEND", "RESEND_API_KEY": "re_x"}, "resend"),  # the original's spelling
        ({"EMAIL_PROVIDER": "smtp", "RESEND_API_KEY": "re_x"}, "smtp"),  # an explicit choice wins
        ({"EMAIL_PROVIDER": "console", "SENDGRID_API_KEY": "SG.x"}, "console"),
    ],
)
def test_email_provider_is_chosen_by_key_when_unset(env: dict[str, str], provider: str) -> None:
    assert make(**env).email_provider == provider


def test_the_original_sender_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_PHONE_NUMBER", "TWILIO_WHATSAPP_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMS_FROM", "+15005550006")
    monkeypatch.setenv("WHATSAPP_FROM", "+14155238886")
    settings = load_settings(_env_file=None)
    assert (settings.twilio_phone_number, settings.twilio_whatsapp_number) == ("+15005550006", "+14155238886")
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", "+15005550001")  # both set: TWILIO_ wins, as in the original
    assert load_settings(_env_file=None).twilio_phone_number == "+15005550001"


TWILIO = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "token", "SMS_FROM": "+15005550006"}


def test_sms_and_whatsapp_are_on_when_configured_and_off_when_told() -> None:
    configured = make(**TWILIO)
    assert (configured.sms_enabled, configured.whatsapp_enabled) == (True, False)
    assert configured.channel_off_reason("sms") is None
    assert configured.channel_off_reason("whatsapp") == "not configured: TWILIO_WHATSAPP_NUMBER not set"
    off = make(**TWILIO, SMS_ENABLED="false")
    assert off.sms_enabled is False and off.channel_off_reason("sms") == "SMS_ENABLED=false"
    nothing = make()
    assert (nothing.sms_enabled, nothing.whatsapp_enabled) == (False, False)
    assert nothing.channel_off_reason("sms") == (
        "not configured: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER not set"
    )


def test_enabling_whatsapp_without_its_sender_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^SMS/WhatsApp enabled but TWILIO_WHATSAPP_NUMBER not set$"):
        make(**TWILIO, WHATSAPP_ENABLED="true")


def test_default_phone_region_is_a_region_code() -> None:
    assert make(DEFAULT_PHONE_REGION="fr").default_phone_region == "FR"
    assert make(DEFAULT_PHONE_REGION="").default_phone_region is None


def test_cli_stops_with_one_clear_line_for_a_provider_without_its_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envoi", "migrate"],
        env={"PATH": "/usr/bin:/bin", "EMAIL_PROVIDER": "sendgrid", **SOURCE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "envoi: EMAIL_PROVIDER=sendgrid but SENDGRID_API_KEY is not set"
    ]


def test_cli_stops_with_one_clear_line_and_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envoi", "migrate"],
        env={"PATH": "/usr/bin:/bin", "REDIS_PORT": "nope", **SOURCE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "envoi: Invalid setting REDIS_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]
