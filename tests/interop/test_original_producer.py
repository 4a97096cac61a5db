"""The original NestJS API as a producer, an envoi worker taking its jobs over.

`node/original_producer.js` rebuilds the original's enqueueing from its shapes: its QueueService's queue
(`notifications`) and default job options (5 attempts, exponential backoff from 30 s, removed on
completion, kept on failure), its four job names and the data each call site builds (confirmation,
verification, abandon and no-show emails, SMS, WhatsApp with its `delivery:<org>:<hash>` job id, in-app
with and without metadata), plus an email with an attachment (envoi's extension). It waits for each
outcome through QueueEvents, as a Node caller would: everything valid is delivered (SMTP sink, Twilio
stand-in, inbox rows), and the caller's `metadata.notificationId` comes back in the outcome.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from envoi.config import Settings
from envoi.runtime import Envoi
from tests.fixtures.delivery import WHATSAPP_FROM
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.interop.support import node

ORIGINAL_DEFAULTS = {
    "attempts": 5,
    "backoff": {"type": "exponential", "delay": 30000},
    "removeOnComplete": True,
    "removeOnFail": False,
}
PHONE = "+33698765432"
ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:RDV KLOZD\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"


async def produce(node_dir: Path, settings: Settings, tmp_path: Path, calls: list[dict[str, Any]]) -> Any:
    """Run the original's call sites in Node; each job added, with its outcome."""
    calls_file = tmp_path / "calls.json"
    calls_file.write_text(json.dumps(calls))
    out = await node(
        node_dir, "original_producer.js", settings.redis_url or "", settings.redis_prefix, str(calls_file),
        "--wait", timeout=90,
    )  # fmt: skip
    return json.loads(out)


def confirmation(**overrides: Any) -> dict[str, Any]:
    call = {
        "flow": "appointmentConfirmation",
        "leadEmail": "jeanne.martin@example.com",
        "leadPhone": PHONE,
        "firstName": "Jeanne",
        "closerName": "Marie Dupont",
        "closerId": "closer-1",
        "notificationId": "cm4notif0000confirm01",
        "appointmentId": "apt-1",
        "organizationId": "org-1",
        "scheduledAt": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "visioUrl": "https://meet.example.com/apt-1",
        "whatsappFrom": WHATSAPP_FROM,
    }
    call.update(overrides)
    return call


async def inbox(envoi: Envoi) -> list[tuple[Any, ...]]:
    query = sa.text("SELECT user_id, type, title, CAST(metadata AS TEXT) FROM notifications ORDER BY user_id")
    async with envoi.db.session() as session:
        return [tuple(row) for row in await session.execute(query)]


async def test_every_job_the_original_adds_is_delivered_by_an_envoi_worker(
    node_bullmq: Path,
    delivery_settings: Settings,
    make_envoi: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
    tmp_path: Path,
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    calls = [
        confirmation(),
        {"flow": "verification", "email": "new.user@example.com", "firstName": "Léa", "code": "482913"},
        {
            "flow": "abandonRecovery",
            "email": "prospect@example.com",
            "formUrl": "https://app.example.com/forms/demo",
            "abandonId": "ab-1",
            "formId": "form-1",
        },
        {
            "flow": "noShowRecovery",
            "email": "absent@example.com",
            "appointmentId": "apt-2",
            "leadId": "lead-2",
        },
        {
            "flow": "emailWithAttachment",
            "email": "invite@example.com",
            "subject": "Votre invitation",
            "filename": "rendez-vous.ics",
            "content": ICS,
            "appointmentId": "apt-3",
        },
        {
            "flow": "inApp",
            "userId": "closer-1",
            "title": "Nouveau RDV",
            "message": "Jeanne a réservé",
            "metadata": {"notificationId": "cm4notif0000inapp0001", "leadId": "lead-1"},
        },
        {"flow": "inApp", "userId": "closer-2", "title": "Bienvenue", "message": "Votre compte est prêt"},
        # Not valid: never delivered, failed at once with the field named (not retried five times).
        {"flow": "verification", "email": "not-an-address", "firstName": "X", "code": "000000"},
    ]
    jobs = await produce(node_bullmq, delivery_settings, tmp_path, calls)

    assert [job["name"] for job in jobs] == [
        "SEND_EMAIL", "SEND_SMS", "SEND_WHATSAPP", "SEND_EMAIL", "SEND_EMAIL", "SEND_EMAIL", "SEND_EMAIL",
        "CREATE_INAPP_NOTIFICATION", "CREATE_INAPP_NOTIFICATION", "SEND_EMAIL",
    ]  # fmt: skip
    for job in jobs:
        assert {key: job["opts"][key] for key in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS
    *valid, invalid = jobs
    assert [job["state"] for job in valid] == ["completed"] * len(valid), valid
    assert invalid["state"] == "failed" and "to" in invalid["failedReason"]

    # Email: five messages, the .ics attached to the one that carries it.
    received = {m.rcpt_tos[0]: m for m in smtp_sink.messages}
    assert sorted(received) == [
        "absent@example.com", "invite@example.com", "jeanne.martin@example.com", "new.user@example.com",
        "prospect@example.com",
    ]  # fmt: skip
    assert len(smtp_sink.messages) == len(received), "each email once"
    assert received["new.user@example.com"].message["Subject"] == "Vérifiez votre adresse email - KLOZD"
    [attachment] = received["invite@example.com"].attachments
    assert (attachment.get_filename(), attachment.get_content_type()) == ("rendez-vous.ics", "text/calendar")
    assert "SUMMARY:RDV KLOZD" in attachment.get_content()
    assert received["jeanne.martin@example.com"].attachments == []

    # SMS and WhatsApp through Twilio; the WhatsApp job kept the original's stable job id.
    sent = {m["To"]: m for m in twilio_server.messages}
    assert sorted(sent) == [PHONE, f"whatsapp:{PHONE}"]
    assert sent[PHONE]["Body"].startswith("Rappel RDV KLOZD: ")
    whatsapp_job = next(job for job in jobs if job["name"] == "SEND_WHATSAPP")
    assert whatsapp_job["id"].startswith("delivery:org-1:")

    # In-app: rows as the original's; the caller's notification id kept, and handed back.
    rows = await inbox(envoi)
    assert [(user, kind, title) for user, kind, title, _ in rows] == [
        ("closer-1", "IN_APP", "Nouveau RDV"),
        ("closer-2", "IN_APP", "Bienvenue"),
    ]
    assert json.loads(rows[0][3]) == {"notificationId": "cm4notif0000inapp0001", "leadId": "lead-1"}
    assert rows[1][3] is None, "no metadata is SQL NULL"
    by_flow = {(job["flow"], job["name"]): job["returnvalue"] for job in valid}
    inapp = next(job for job in valid if job["data"].get("userId") == "closer-1")
    assert inapp["returnvalue"]["metadata"] == {"notificationId": "cm4notif0000inapp0001"}
    assert by_flow[("appointmentConfirmation", "SEND_EMAIL")]["metadata"] == {
        "notificationId": "cm4notif0000confirm01"
    }
    # "skipped" when bullmq ran the job again after a missed lock renewal (the suite's lock is 2 s, and a
    # loaded machine can starve the event loop that long) and the ledger found it SENT: still sent once.
    assert by_flow[("appointmentConfirmation", "SEND_EMAIL")]["status"] in ("sent", "skipped")


@pytest.mark.parametrize(
    ("flow", "phone"),
    [
        pytest.param("sms", PHONE, id="sms-e164"),
        pytest.param("whatsapp", PHONE, id="whatsapp-e164"),
        # The original sends numbers as stored, adding the `+` itself at Twilio's door.
        pytest.param("sms", "33698765432", id="sms-without-plus"),
        pytest.param("whatsapp", "33698765432", id="whatsapp-without-plus"),
        pytest.param("confirmation", "33698765432", id="confirmation-without-plus"),
    ],
)
async def test_phone_numbers_as_the_original_sends_them_are_delivered(
    node_bullmq: Path,
    delivery_settings: Settings,
    make_envoi: Any,
    start_worker: Any,
    twilio_server: TwilioServer,
    tmp_path: Path,
    flow: str,
    phone: str,
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    if flow == "confirmation":
        call = confirmation(leadPhone=phone)
    else:
        call = {
            "flow": flow,
            "to": phone,
            "message": "Rappel RDV KLOZD: demain 10h",
            "appointmentId": "apt-9",
        }
    jobs = await produce(node_bullmq, delivery_settings, tmp_path, [call])
    texts = [job for job in jobs if job["name"] in ("SEND_SMS", "SEND_WHATSAPP")]
    assert [job["state"] for job in texts] == ["completed"] * len(texts), texts
    expected = {"SEND_SMS": PHONE, "SEND_WHATSAPP": f"whatsapp:{PHONE}"}
    assert sorted(m["To"] for m in twilio_server.messages) == sorted(expected[job["name"]] for job in texts)
