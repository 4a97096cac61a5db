"""Preferences through the API, the CLI and the Python API; checked by the worker at send time (a change
made while the job waits counts); hostile input answered with the field's name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from envoi.cli import app
from envoi.config import Settings, load_settings
from envoi.db.models import DeliveryStatus
from envoi.db.session import Database
from envoi.errors import ConfigError, InvalidJobDataError
from envoi.notifications.jobs import parse_job
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.recipients import Preference, PreferencesService
from tests.api.conftest import Api
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, job_state
from tests.recipients.conftest import deliveries

LEAD = "lea@example.com"


async def test_a_preference_changed_while_the_job_waits_suppresses_it_at_send_time(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api(abandon_recovery_schedule="6s")  # the PUT lands first, even on a loaded machine
    events: list[tuple[str, dict[str, Any]]] = []

    async def collect(event_type: str, data: dict[str, Any]) -> None:
        events.append((event_type, data))

    api.envoi.events.subscribe(collect)
    body = {"email": LEAD, "resumeUrl": "https://app.example.com/f"}
    answer = await api.client.post("/v1/flows/abandon-recovery", json=body)
    [job] = answer.json()["jobs"]
    assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, job["jobId"]) == "delayed"
    # Through the user id its metadata does not name: the address itself (mixed case: one recipient).
    change = {"preferences": [{"channel": "email", "category": "marketing", "enabled": False}]}
    put = await api.client.put("/v1/recipients/Lea@Example.com/preferences", json=change)
    assert put.status_code == 200 and put.json()["recipient"] == LEAD

    async def settled() -> list[Any]:
        rows = await deliveries(api.envoi, LEAD)
        return rows if rows and rows[0].status != DeliveryStatus.SENDING else []

    [row] = await eventually(settled, timeout=30, message="the job settled in the ledger")
    assert (row.status, row.error_code) == (DeliveryStatus.SUPPRESSED, "RECIPIENT_OPTED_OUT")
    assert smtp_sink.messages == []
    # Completed (removed, as completed jobs are), never a dead letter; listed on the admin page.
    await eventually(lambda: _gone(api, job["jobId"]), message="the job completed and removed")
    assert (await api.admin.get("/v1/admin/failed-jobs")).json()["items"] == []
    [withheld] = (await api.admin.get("/v1/admin/deliveries")).json()["items"]
    assert withheld["status"] == "SUPPRESSED" and withheld["recipient"] != LEAD
    assert withheld["templateKey"] == "abandon_recovery" and "opted out" in withheld["errorMessage"]
    # The webhook event says why: SUPPRESSED, not the CANCELLED of a channel switched off.
    [(event_type, data)] = events
    assert (event_type, data["status"], data["deliveryId"]) == ("message.suppressed", "SUPPRESSED", row.id)


async def test_turning_marketing_back_on_sends_again(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api()
    off = {"preferences": [{"channel": "email", "category": "marketing", "enabled": False}]}
    on = {"preferences": [{"channel": "email", "category": "marketing", "enabled": True}]}
    assert (await api.client.put(f"/v1/recipients/{LEAD}/preferences", json=off)).status_code == 200
    assert (await api.client.put(f"/v1/recipients/{LEAD}/preferences", json=on)).status_code == 200
    body = {"email": LEAD, "resumeUrl": "https://app.example.com/f"}
    assert (await api.client.post("/v1/flows/abandon-recovery", json=body)).status_code == 202
    await eventually(lambda: smtp_sink.messages, message="the recovery email")


async def test_an_opt_out_under_the_user_id_stops_a_raw_marketing_sms(
    start_api: Callable[..., Awaitable[Api]], twilio_server: Any
) -> None:
    api = await start_api()
    await api.envoi.preferences.update("user_42", [_pref("sms")])
    data = {
        "to": "+33612345678",
        "message": "Promo",
        "category": "marketing",
        "metadata": {"userId": "user_42"},
    }
    answer = await api.client.post("/v1/jobs/SEND_SMS", json=data)
    assert answer.status_code == 202, answer.text

    async def suppressed() -> bool:
        rows = await deliveries(api.envoi, "+33612345678")
        return bool(rows) and rows[0].status == DeliveryStatus.SUPPRESSED

    await eventually(suppressed, message="the SMS suppressed")
    [row] = await deliveries(api.envoi, "+33612345678")
    assert "by user id" in (row.error_message or "")


async def _gone(api: Api, job_id: str) -> bool:
    return await job_state(api.envoi, NOTIFICATIONS_QUEUE, job_id) == "unknown"


def _pref(channel: str) -> Preference:
    return Preference(channel, "marketing", False)


@pytest.mark.parametrize(
    ("recipient", "body", "path"),
    [
        ("not-an-email@", {}, "recipient"),
        ("+12", {}, "recipient"),
        ("user with spaces", {}, "recipient"),
        ("x" * 300, {}, "recipient"),
        (
            LEAD,
            {"preferences": [{"channel": "email", "category": "promo", "enabled": False}]},
            "preferences.0.category",
        ),
        (
            LEAD,
            {"preferences": [{"channel": "fax", "category": "marketing", "enabled": False}]},
            "preferences.0.channel",
        ),
        (
            LEAD,
            {"preferences": [{"channel": "email", "category": "transactional", "enabled": False}]},
            "preferences.0.enabled",
        ),
        (LEAD, {"quietHours": "25:00-08:00"}, "quietHours"),
        (LEAD, {"quietHours": "21:00-21:00"}, "quietHours"),
        (LEAD, {"timezone": "Mars/Olympus_Mons"}, "timezone"),
        (LEAD, {"email": "nope"}, "email"),
        (LEAD, {"unknown": 1}, "unknown"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    start_api: Callable[..., Awaitable[Api]], recipient: str, body: dict[str, Any], path: str
) -> None:
    api = await start_api(worker=False)
    answer = await api.client.put(f"/v1/recipients/{recipient}/preferences", json=body)
    assert answer.status_code == 422, answer.text
    assert path in [error["path"] for error in answer.json()["errors"]], answer.json()
    assert (await api.client.get(f"/v1/recipients/{LEAD}/preferences")).json()["preferences"] == []


async def test_the_preferences_need_the_api_key(start_api: Callable[..., Awaitable[Api]]) -> None:
    api = await start_api(worker=False)
    assert (await api.anonymous.get(f"/v1/recipients/{LEAD}/preferences")).status_code == 401


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("QUIET_HOURS", "9pm-8am"),
        ("QUIET_HOURS", "21:00-24:00"),
        ("DIGEST_WINDOW", "soon"),
        ("UNSUBSCRIBE_SECRET", "short"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable) as caught:
        load_settings(**{variable.lower(): value})
    if variable == "UNSUBSCRIBE_SECRET":
        assert value not in str(caught.value), "a secret is never quoted"


def test_a_raw_job_with_a_bad_category_is_refused_naming_it() -> None:
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job("SEND_EMAIL", {"to": LEAD, "subject": "s", "html": "h", "category": "promo"})
    assert "category" in caught.value.fields
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job("SEND_SMS", {"to": "+33612345678", "message": "m", "timezone": "Nowhere/Land"})
    assert "timezone" in caught.value.fields


runner = CliRunner()


def test_the_cli_sets_and_shows_and_refuses_bad_input(settings: Settings) -> None:
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": str(settings.redis_url),
        "LOG_LEVEL": "WARNING",
    }
    done = runner.invoke(
        app,
        ["prefs", "set", "Lea@Example.com", "--channel", "email", "--off", "--quiet-hours", "22:00-07:00"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["prefs", "show", LEAD, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    stored = json.loads(shown.stdout)
    assert stored["preferences"] == [
        {"channel": "email", "category": "marketing", "enabled": False, "source": "cli"}
    ]
    assert stored["quietHours"] == "22:00-07:00"
    for args, field in (
        (["prefs", "set", "bad recipient", "--channel", "email", "--off"], "recipient"),
        (["prefs", "set", LEAD, "--channel", "email", "--category", "promo", "--off"], "category"),
        (["prefs", "set", LEAD, "--quiet-hours", "late"], "quietHours"),
    ):
        refused = runner.invoke(app, args, env=env)
        assert refused.exit_code == 2, refused.output
        assert field in refused.stderr
    assert asyncio.run(_count_unchanged(settings)) is True


async def _count_unchanged(settings: Settings) -> bool:
    db = Database(settings.database_url)
    try:
        stored = await PreferencesService(db).get(LEAD)
        return len(stored.preferences) == 1 and stored.quiet_hours == "22:00-07:00"
    finally:
        await db.dispose()
