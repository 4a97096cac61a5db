"""`envoi webhooks ...` through typer's CliRunner, on a real database and Redis: the secret printed by
create and rotate-secret only, exit 2 for a refused url or unknown event, 1 for an unknown id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.fixtures.webhook_receiver import WebhookReceiver
from tests.helpers import eventually
from tests.webhooks.conftest import QUEUES

runner = CliRunner()
UNKNOWN = "01JUNKNOWN0000000000000000"


@pytest.fixture
def env(webhook_settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": webhook_settings.database_url,
        "REDIS_URL": str(webhook_settings.redis_url),
        "REDIS_PREFIX": webhook_settings.redis_prefix,
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }


def webhooks(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, ["webhooks", *args], env=env)


def test_create_list_update_rotate_delete(env: dict[str, str], webhook_receiver: WebhookReceiver) -> None:
    created = webhooks(env, "create", webhook_receiver.url, "-e", "message.sent", "-e", "message.failed")
    assert created.exit_code == 0, created.output
    assert "not shown again" in created.stdout
    as_json = webhooks(env, "create", webhook_receiver.url, "--event", "dead_letter.created", "--json")
    second = json.loads(as_json.stdout)
    assert second["secret"].startswith("whsec_")

    listed = webhooks(env, "list", "--json")
    assert listed.exit_code == 0
    assert "whsec_" not in listed.stdout and second["secret"] not in listed.stdout
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[second["id"]]["events"] == ["dead_letter.created"]
    table = webhooks(env, "list")
    assert second["id"] in table.stdout and "whsec_" not in table.stdout

    disabled = webhooks(env, "update", second["id"], "--disable", "--json")
    assert disabled.exit_code == 0 and json.loads(disabled.stdout)["enabled"] is False
    changed = webhooks(env, "update", second["id"], "--enable", "-e", "message.sent", "--description", "CRM")
    assert changed.exit_code == 0, changed.output
    row = {r["id"]: r for r in json.loads(webhooks(env, "list", "--json").stdout)}[second["id"]]
    assert (row["enabled"], row["events"], row["description"]) == (True, ["message.sent"], "CRM")

    rotated = json.loads(webhooks(env, "rotate-secret", second["id"], "--json").stdout)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != second["secret"]

    assert webhooks(env, "delete", second["id"]).exit_code == 0
    gone = webhooks(env, "delete", second["id"])
    assert gone.exit_code == 1 and "No webhook endpoint" in gone.stderr


def test_a_test_event_is_queued_and_delivered(
    env: dict[str, str], webhook_settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    created = json.loads(webhooks(env, "create", webhook_receiver.url, "-e", "message.sent", "--json").stdout)
    webhook_receiver.secrets = [created["secret"]]
    queued = webhooks(env, "test", created["id"], "--json")
    assert queued.exit_code == 0, queued.output
    event_id = json.loads(queued.stdout)["eventId"]

    async def deliver() -> None:
        envoi = Envoi(webhook_settings)
        worker = Worker(envoi, queues=QUEUES)
        await worker.start()
        try:
            await eventually(lambda: webhook_receiver.requests, message="the test event")
        finally:
            await worker.close(timeout=5)
            await envoi.close()

    asyncio.run(deliver())
    [request] = webhook_receiver.requests
    assert request.verified and request.event_id == event_id and request.json["type"] == "webhook.test"

    attempts = webhooks(env, "attempts", created["id"], "--json")
    assert attempts.exit_code == 0
    [attempt] = json.loads(attempts.stdout)
    assert (attempt["eventId"], attempt["statusCode"]) == (event_id, 200)
    assert event_id in webhooks(env, "attempts", created["id"]).stdout


def test_a_refused_url_or_an_unknown_event_exits_2(env: dict[str, str]) -> None:
    strict = {**env, "WEBHOOK_ALLOW_HTTP": "false", "WEBHOOK_ALLOW_PRIVATE": "false"}
    plain = webhooks(strict, "create", "http://example.com/hook", "-e", "message.sent")
    assert plain.exit_code == 2 and "url: must use https" in plain.stderr
    private = webhooks(strict, "create", "https://10.0.0.8/hook", "-e", "message.sent")
    assert private.exit_code == 2 and "10.0.0.8 is a private address" in private.stderr
    unknown = webhooks(strict, "create", "https://8.8.8.8/hook", "-e", "message.opened")
    assert unknown.exit_code == 2 and "events.0: unknown event 'message.opened'" in unknown.stderr
    no_event = webhooks(strict, "create", "https://8.8.8.8/hook")
    assert no_event.exit_code == 2
    assert json.loads(webhooks(strict, "list", "--json").stdout) == []


@pytest.mark.parametrize(
    "args",
    [("update", UNKNOWN, "--disable"), ("rotate-secret", UNKNOWN), ("test", UNKNOWN), ("attempts", UNKNOWN)],
)
def test_an_unknown_id_exits_1(env: dict[str, str], args: tuple[str, ...]) -> None:
    result = webhooks(env, *args)
    assert result.exit_code == 1
    assert f"No webhook endpoint with id {UNKNOWN}" in result.stderr
