"""Provider policy is visible: `envoi providers` prints each provider's circuit, rate limit and shared
waits (`/v1/admin/queues`: tests/api/test_admin_providers.py) (and a bad RATE_LIMITS stops it with one line, exit 2), and the
per-provider counters reach /metrics."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings

runner = CliRunner()


def test_envoi_providers_prints_each_provider(settings: Settings) -> None:
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": str(settings.redis_url),
        "REDIS_PREFIX": settings.redis_prefix,
        "EMAIL_PROVIDERS": "smtp,console",
        "RATE_LIMITS": "smtp=50/s",
        "LOG_LEVEL": "WARNING",
    }
    result = runner.invoke(app, ["providers", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output.strip().splitlines()[-1])
    assert [(r["channel"], r["provider"], r["rate_limit"]) for r in rows] == [
        ("email", "smtp", 50.0),
        ("email", "console", None),
    ]
    table = runner.invoke(app, ["providers"], env={**env, "COLUMNS": "200"})
    assert table.exit_code == 0 and "50/s" in table.output


def test_a_bad_rate_limit_stops_the_command_with_one_line(settings: Settings) -> None:
    env = {"DATABASE_URL": settings.database_url, "RATE_LIMITS": "twilio=fast"}
    result = runner.invoke(app, ["providers"], env=env)
    assert result.exit_code == 2
    assert "RATE_LIMITS" in result.output and "twilio=fast" in result.output


def test_provider_counters_are_exported() -> None:
    names = {metric.name for metric in REGISTRY.collect()}
    assert "envoi_provider_sends" in names
