"""Chaos (11): reminders cancelled and moved while Redis is down never fire at the old time.

A private redis-server with its append-only file: the reminders are scheduled (due a few seconds ahead:
the appointment starts in 1 h plus a few seconds, so the hour-before reminder is due then), Redis is
stopped, one appointment is cancelled and another moved through the HTTP API, Redis comes back with the
old jobs still in it, a worker starts, and the old jobs run at their old time: each completes without
sending (the ledger row reads CANCELLED with the reason), and nothing reaches the SMTP sink or Twilio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from envoi.config import Settings
from envoi.db.models import DeliveryStatus, FailedJob, ScheduledMessage, ScheduleStatus
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.api.conftest import API_KEY
from tests.api.test_flows import appointment
from tests.chaos.scheduling_support import StoppableRedis, api_client
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually, job_state

#: How far ahead the old reminders are due: room to stop Redis, cancel, move and start it again first.
DUE_IN_S = 8


async def ledger_rows(envoi: Envoi, rows: list[ScheduledMessage]) -> list[tuple[str, str | None]]:
    """(status, error code) of each row's message in the ledger; () until a handler ran it."""
    found = []
    for row in rows:
        delivery = await envoi.ledger.get(f"{row.group_key}:{row.kind}:{row.id}")
        found.append((delivery.status, delivery.error_code) if delivery else ("", None))
    return found


async def test_reminders_cancelled_and_moved_while_redis_is_down_never_fire_at_the_old_time(
    tmp_path: Path,
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
    smtp_sink: SmtpSink,
    twilio_server: TwilioServer,
) -> None:
    with StoppableRedis(tmp_path / "redis") as redis:
        settings = make_delivery_settings(redis_url=redis.url, envoi_api_key=API_KEY)
        api_envoi = make_envoi(settings)
        soon = timedelta(hours=1, seconds=DUE_IN_S).total_seconds() / 3600
        async with api_client(api_envoi) as api:
            for appointment_id in ("apt-cancelled", "apt-moved"):
                response = await api.put(
                    f"/v1/appointments/{appointment_id}/reminders",
                    json=appointment(appointment_id, in_hours=soon),
                )
                assert response.status_code == 200, response.text
                # The hour-before reminder, by email and SMS; the day-before one is past already.
                assert [(r["kind"], r["channel"]) for r in response.json()["reminders"]] == [
                    ("hour", "email"),
                    ("hour", "sms"),
                ]

            redis.stop()
            cancelled = await api.delete("/v1/appointments/apt-cancelled/reminders")
            assert cancelled.status_code == 202, "not 204: Redis could not be told"
            assert cancelled.json()["removedFromQueue"] is False and len(cancelled.json()["cancelled"]) == 2
            moved = await api.put(
                "/v1/appointments/apt-moved/reminders", json=appointment("apt-moved", in_hours=30)
            )
            assert moved.status_code == 202, moved.text
            assert len(moved.json()["superseded"]) == 2 and moved.json()["reminders"] == []
            assert {r["kind"] for r in moved.json()["deadLettered"]} == {"day", "hour"}

        redis.start()
        worker_envoi = make_envoi(settings)
        old = [
            row
            for appointment_id in ("apt-cancelled", "apt-moved")
            for row in await worker_envoi.schedule.rows(f"appointment:{appointment_id}")
            if row.status in (ScheduleStatus.CANCELLED, ScheduleStatus.SUPERSEDED)
        ]
        assert sorted(row.kind for row in old) == sorted(["reminder-hour", "reminder-hour-sms"] * 2)
        for row in old:
            assert await job_state(worker_envoi, NOTIFICATIONS_QUEUE, row.job_id) == "delayed", (
                "the outage left the old jobs in Redis: only the record stops them"
            )
        await start_worker(worker_envoi)

        async def all_withheld() -> bool:
            return all(status for status, _ in await ledger_rows(worker_envoi, old))

        await eventually(all_withheld, timeout=DUE_IN_S + 20, message="the old reminders run at their time")
        outcome = await ledger_rows(worker_envoi, old)
        assert sorted(outcome) == sorted(
            [(DeliveryStatus.CANCELLED, "SCHEDULE_CANCELLED")] * 2
            + [(DeliveryStatus.CANCELLED, "SCHEDULE_SUPERSEDED")] * 2
        )
        assert smtp_sink.messages == [] and twilio_server.messages == []

        # The moved appointment's new reminders were not lost: they wait in the dead letters with their
        # due time, for `envoi dlq retry` (they carry their record's id, so a retry is checked too).
        async with worker_envoi.db.session() as session:
            dead = (await session.scalars(select(FailedJob))).all()
        assert len(dead) == 4
        assert all(row.error_message == "Queue unavailable: delayed job not scheduled" for row in dead)
        assert all(row.job_data["metadata"]["appointmentId"] == "apt-moved" for row in dead)
