"""In-app rows as the original system's, and the caller's `metadata.notificationId` handed back.

The original's `Notification` rows say `IN_APP` and hold no metadata as SQL NULL; its jobs name their
own `Notification` row in `metadata.notificationId`, which envoi keeps in the row and returns with the
job's outcome (bullmq's `returnvalue`), so that the caller can update that row.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from bullmq import Job

from envoi.config import Settings
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import context, email_data, text_data
from tests.helpers import bull_queue, eventually, job_state


async def stored(envoi: Envoi) -> list[tuple[Any, ...]]:
    """type, metadata IS NULL, metadata as text: read in SQL, as the original's readers do."""
    query = sa.text("SELECT type, metadata IS NULL, CAST(metadata AS TEXT) FROM notifications ORDER BY id")
    async with envoi.db.session() as session:
        return [tuple(row) for row in await session.execute(query)]


async def test_an_inapp_row_says_in_app_and_holds_sql_null_without_metadata(
    delivery_settings: Settings, make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    data = {"userId": "u1", "title": "Nouveau lead", "message": "Jeanne a rempli le formulaire"}
    result = await envoi.registry.run(context(JobName.CREATE_INAPP_NOTIFICATION, data, job_id="1"))
    assert result["status"] == "created" and "metadata" not in result
    assert await stored(envoi) == [("IN_APP", True, None)]
    # The inbox still reads it as "no metadata".
    async with envoi.db.session() as session:
        query = sa.text("SELECT count(*) FROM notifications WHERE metadata IS NULL AND type = 'IN_APP'")
        assert (await session.execute(query)).scalar_one() == 1


async def test_the_callers_notification_id_is_kept_in_the_row_and_handed_back(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    data = {
        "userId": "u1",
        "title": "RDV confirmé",
        "message": "Jeanne, demain 10h",
        "metadata": {"notificationId": "cm3x9notif0001", "appointmentId": "apt-1"},
    }
    # Kept after completion so that its returnvalue can be read (the default removes it).
    enqueued = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, JobName.CREATE_INAPP_NOTIFICATION, data, removeOnComplete=False
    )
    assert enqueued.job_id is not None
    await eventually(
        lambda: _completed(envoi, enqueued.job_id or ""), timeout=15, message="the in-app job completed"
    )
    job = await Job.fromId(bull_queue(envoi.queue, NOTIFICATIONS_QUEUE), enqueued.job_id)
    returned = job.returnvalue
    assert returned["status"] == "created"
    assert returned["metadata"] == {"notificationId": "cm3x9notif0001"}
    [(kind, no_metadata, text)] = await stored(envoi)
    assert (kind, no_metadata) == ("IN_APP", False)
    assert returned["notificationId"] != "cm3x9notif0001", "envoi's own row id, beside the caller's"
    assert json.loads(text) == {"notificationId": "cm3x9notif0001", "appointmentId": "apt-1"}


async def _completed(envoi: Envoi, job_id: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == "completed"


async def test_every_job_hands_the_callers_notification_id_back(
    make_delivery_settings: Any, make_envoi: Any
) -> None:
    """Email and SMS as the original's confirmation flow sends them; WhatsApp with its channel off."""
    envoi: Envoi = make_envoi(make_delivery_settings(whatsapp_enabled=False))
    meta = {"notificationId": "cm3x9notif0002", "userId": "closer-1"}
    runs = [
        (JobName.SEND_EMAIL, email_data(metadata=meta), "1", "sent"),
        # The same job run again (a lost acknowledgement): not sent twice, the id still handed back.
        (JobName.SEND_EMAIL, email_data(metadata=meta), "1", "skipped"),
        (JobName.SEND_SMS, text_data(metadata=meta), "2", "sent"),
        (JobName.SEND_WHATSAPP, text_data(metadata=meta), "3", "disabled"),
    ]
    for name, data, job_id, status in runs:
        result = await envoi.registry.run(context(name, data, job_id=job_id))
        assert (result["status"], result["metadata"]) == (status, {"notificationId": "cm3x9notif0002"})
    plain = await envoi.registry.run(context(JobName.SEND_SMS, text_data(), job_id="9"))
    assert "metadata" not in plain
