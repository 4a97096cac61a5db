"""The abandon-recovery sequence end to end: ABANDON_RECOVERY_SCHEDULE=1s,2s,3s, a real worker, the SMTP
sink. Three emails in order with the original's three subjects and the offer only in the last; a cancel
after the first stops the rest, with Redis up (the jobs are removed) and with Redis unreachable for the
caller (the jobs stay, run at their time, and complete without sending)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from envoi.config import Settings, load_settings
from envoi.db.models import DeliveryStatus, ScheduleStatus
from envoi.embedded_redis import free_port
from envoi.errors import ConfigError
from envoi.notifications.jobs import JobMetadata, SendEmailJob
from envoi.notifications.service import NotificationsService, abandon_group
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.fixtures.smtp import SmtpSink
from tests.helpers import bull_queue, eventually, job_state
from tests.notifications.factories import LEAD_EMAIL

SUBJECTS = [
    "Vous n'avez pas terminé votre demande",
    "Dernière chance : Finalisez votre demande",
    "Offre spéciale pour finaliser aujourd'hui",
]
OFFER = "-20 % si vous réservez avant vendredi <b>"
RESUME_URL = "https://app.example.com/forms/demo?step=2"


@pytest.fixture
def fast_settings(make_delivery_settings: Callable[..., Settings]) -> Settings:
    return make_delivery_settings(abandon_recovery_schedule="1s,2s,3s")


@pytest.fixture
async def envoi(
    fast_settings: Settings, make_envoi: Callable[..., Envoi], start_worker: Callable[..., Awaitable[Worker]]
) -> Envoi:
    envoi = make_envoi(fast_settings)
    await start_worker(envoi)
    return envoi


@pytest.fixture
def envoi_on(
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
) -> Callable[[str], Awaitable[Envoi]]:
    """An envoi with a worker on its own ABANDON_RECOVERY_SCHEDULE: a test racing a step against a
    cancel leaves a loaded machine several seconds of margin."""

    async def start(schedule: str) -> Envoi:
        envoi = make_envoi(make_delivery_settings(abandon_recovery_schedule=schedule))
        await start_worker(envoi)
        return envoi

    return start


async def ledger_status(envoi: Envoi, key: str) -> str | None:
    row = await envoi.ledger.get(key)
    return row.status if row else None


async def test_three_emails_in_order_with_the_offer_in_the_last_only(
    envoi: Envoi, smtp_sink: SmtpSink
) -> None:
    recovery = await envoi.notifications.schedule_abandon_recovery(
        email=LEAD_EMAIL, first_name="Léa", resume_url=RESUME_URL, offer=OFFER
    )
    assert [s.slot.kind for s in recovery.replacement.scheduled] == ["step-1", "step-2", "step-3"]
    assert all(s.queued and ":" not in s.slot.job_id for s in recovery.replacement.scheduled)
    messages = await eventually(
        lambda: smtp_sink.messages if len(smtp_sink.messages) >= 3 else [], timeout=15, message="three emails"
    )
    assert [m.message["Subject"] for m in messages] == SUBJECTS
    assert all(m.rcpt_tos == [LEAD_EMAIL] for m in messages)
    for message in messages[:2]:
        assert message.text is not None and "Offre spéciale" not in message.text
        assert message.html is not None and "Offre spéciale" not in message.html
    last = messages[2]
    assert last.text is not None and f"Offre spéciale : {OFFER}" in last.text
    # The offer is text: escaped in the HTML.
    assert last.html is not None and "avant vendredi &lt;b&gt;" in last.html and "<b>" not in last.html
    assert f'href="{RESUME_URL.replace("&", "&amp;")}"' in last.html
    await eventually(
        lambda: _all_sent(envoi, recovery.abandon_id), message="every step marked SENT in its record"
    )


async def _all_sent(envoi: Envoi, abandon_id: str) -> bool:
    rows = await envoi.schedule.rows(abandon_group(abandon_id))
    return len(rows) == 3 and {row.status for row in rows} == {ScheduleStatus.SENT}


async def test_a_cancel_after_the_first_email_stops_the_rest(
    envoi_on: Callable[[str], Awaitable[Envoi]], smtp_sink: SmtpSink
) -> None:
    envoi = await envoi_on("1s,8s,9s")
    recovery = await envoi.notifications.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url=RESUME_URL)
    [first] = await eventually(lambda: smtp_sink.messages, timeout=10, message="the first email")
    assert first.message["Subject"] == SUBJECTS[0]
    group = abandon_group(recovery.abandon_id)

    async def first_recorded_sent() -> bool:
        return (await envoi.schedule.rows(group))[0].status == ScheduleStatus.SENT

    # Until then a cancel would (rightly) answer that step 1 may be being sent.
    await eventually(first_recorded_sent, message="step 1 recorded as sent")

    cancelled = await envoi.notifications.cancel_abandon_recovery(abandon_id=recovery.abandon_id)
    later = [s.slot.job_id for s in recovery.replacement.scheduled[1:]]
    assert sorted(cancelled.cancelled) == sorted(later)
    assert cancelled.complete, "cancelled and removed from Redis, nothing being sent"
    for job_id in later:
        assert await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == "unknown"
    rows = {row.kind: row.status for row in await envoi.schedule.rows(group)}
    assert rows == {
        "step-1": ScheduleStatus.SENT,
        "step-2": ScheduleStatus.CANCELLED,
        "step-3": ScheduleStatus.CANCELLED,
    }
    assert len(smtp_sink.messages) == 1


async def test_a_cancel_made_while_redis_was_unreachable_still_holds(
    envoi_on: Callable[[str], Awaitable[Envoi]],
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    smtp_sink: SmtpSink,
) -> None:
    """The caller's Redis is unreachable (a closed port; the worker's Redis is fine): the cancel is only
    recorded in SQL, the jobs stay in Redis, run at their time, and complete without sending."""
    envoi = await envoi_on("5s,6s,7s")
    recovery = await envoi.notifications.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url=RESUME_URL)
    cut_off = make_envoi(make_delivery_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    cancelled = await cut_off.notifications.cancel_abandon_recovery(abandon_id=recovery.abandon_id)
    assert len(cancelled.cancelled) == 3 and not cancelled.removed and not cancelled.complete

    keys = [s.slot.message_key for s in recovery.replacement.scheduled]

    async def all_withheld() -> bool:
        return [await ledger_status(envoi, key) for key in keys] == [DeliveryStatus.CANCELLED] * 3

    await eventually(all_withheld, timeout=30, message="each step run and withheld")
    assert smtp_sink.messages == []
    row = await envoi.ledger.get(keys[0])
    assert row is not None and row.error_code == "SCHEDULE_CANCELLED"


async def test_scheduling_the_same_abandon_again_replaces_the_sequence(
    make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]
) -> None:
    service: NotificationsService = make_envoi(make_settings()).notifications
    first = await service.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url=RESUME_URL)
    again = await service.schedule_abandon_recovery(email=LEAD_EMAIL.upper(), resume_url=RESUME_URL)
    assert again.abandon_id == first.abandon_id, "derived from the email and resumeUrl"
    assert sorted(again.replacement.superseded) == sorted(s.slot.job_id for s in first.replacement.scheduled)
    delayed = {str(job.id) for job in await _delayed(service)}
    assert delayed == {s.slot.job_id for s in again.replacement.scheduled}

    other = await service.schedule_abandon_recovery(
        email=LEAD_EMAIL, resume_url=RESUME_URL, abandon_id="form-42_lead.7"
    )
    assert other.abandon_id == "form-42_lead.7" and other.replacement.superseded == []
    assert other.replacement.scheduled[0].slot.job_id.startswith("abandon-form-42_lead.7-1-")


async def test_the_default_schedule_is_days_one_three_and_six(
    make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]
) -> None:
    service: NotificationsService = make_envoi(make_settings()).notifications
    recovery = await service.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url=RESUME_URL)
    created = [row.created_at for row in await service.delayed.book.rows(abandon_group(recovery.abandon_id))]
    delays = [(s.slot.due_at - created[0]).total_seconds() / 86400 for s in recovery.replacement.scheduled]
    assert [round(d, 2) for d in delays] == [1.0, 3.0, 6.0]


async def _delayed(service: NotificationsService) -> list[Any]:
    return list(await bull_queue(service.queue, NOTIFICATIONS_QUEUE).getDelayed())


@pytest.mark.parametrize(
    "value", ["", "1x", "0s", "3d,1d", "1d,1d", "1d,,3d", "9999999d", "\u0661d", "1.5h", "-1d"]
)
def test_a_bad_schedule_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="ABANDON_RECOVERY_SCHEDULE"):
        load_settings(_env_file=None, abandon_recovery_schedule=value)


def test_a_schedule_takes_seconds_minutes_hours_and_days() -> None:
    settings = load_settings(_env_file=None, abandon_recovery_schedule=" 90s, 15m,2h ,3d")
    assert settings.abandon_recovery_steps == (
        timedelta(seconds=90),
        timedelta(minutes=15),
        timedelta(hours=2),
        timedelta(days=3),
    )


async def test_a_step_dead_lettered_in_an_outage_and_retried_after_its_cancel_is_not_sent(
    envoi: Envoi,
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    smtp_sink: SmtpSink,
) -> None:
    """Scheduled while Redis was unreachable (the steps become dead letters with their due times),
    cancelled, then retried from the dead letters once Redis is back: the retried jobs carry their
    record's id, find it cancelled, and send nothing."""
    cut_off = make_envoi(
        make_delivery_settings(
            abandon_recovery_schedule="1s,2s,3s", redis_url=f"redis://127.0.0.1:{free_port()}/0"
        )
    )
    recovery = await cut_off.notifications.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url=RESUME_URL)
    assert {s.result.mode for s in recovery.replacement.scheduled} == {"sync"}
    assert not any(s.result.succeeded for s in recovery.replacement.scheduled)
    await cut_off.notifications.cancel_abandon_recovery(abandon_id=recovery.abandon_id)

    page = await envoi.dead_letters.list(limit=10)
    assert len(page.items) == 3
    for row in page.items:
        await envoi.dead_letters.retry(row.id)
    keys = [s.slot.message_key for s in recovery.replacement.scheduled]

    async def all_withheld() -> bool:
        return [await ledger_status(envoi, key) for key in keys] == [DeliveryStatus.CANCELLED] * 3

    await eventually(all_withheld, timeout=15, message="the retried steps run and withheld")
    assert smtp_sink.messages == []


async def test_a_job_naming_a_schedule_record_that_does_not_exist_is_not_sent(
    make_delivery_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi], smtp_sink: SmtpSink
) -> None:
    inline = make_envoi(make_delivery_settings(queue_enabled=False))
    job = SendEmailJob(
        to=LEAD_EMAIL,
        subject="Rappel",
        html="<p>Rappel</p>",
        metadata=JobMetadata(
            idempotency_key="abandon:gone:step-1:x", schedule_id="01J0000000000000000000000X"
        ),
    )
    result = await inline.queue.enqueue_job(NOTIFICATIONS_QUEUE, job)
    assert result.succeeded and result.result == {
        "status": "cancelled",
        "deliveryStatus": "CANCELLED",
        "reason": "UNKNOWN",
    }
    row = await inline.ledger.get("abandon:gone:step-1:x")
    assert row is not None and row.error_code == "SCHEDULE_UNKNOWN"
    assert smtp_sink.messages == []


async def test_a_step_whose_send_failed_is_stopped_by_a_cancel_before_its_retry(
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
    smtp_sink: SmtpSink,
) -> None:
    """The first attempt meets an SMTP 451; before the retry (10 s later: room for a loaded machine) the
    lead comes back, while the caller's Redis is unreachable: the retry finds its record cancelled and
    sends nothing."""
    settings = make_delivery_settings(abandon_recovery_schedule="1s", job_backoff_delay_ms=10000)
    envoi = make_envoi(settings)
    await start_worker(envoi)
    smtp_sink.fail_next(code=451, stage="rcpt")
    recovery = await envoi.notifications.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url=RESUME_URL)
    [step] = recovery.replacement.scheduled
    group = abandon_group(recovery.abandon_id)

    async def given_back() -> bool:
        [row] = await envoi.schedule.rows(group)
        return bool(smtp_sink.refusals) and row.status == ScheduleStatus.SCHEDULED

    await eventually(given_back, timeout=10, message="the failed first attempt, its record given back")
    cut_off = make_envoi(make_delivery_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    cancelled = await cut_off.notifications.cancel_abandon_recovery(abandon_id=recovery.abandon_id)
    assert (cancelled.cancelled, cancelled.sending) == ([step.slot.job_id], [])

    async def withheld() -> bool:
        row = await envoi.ledger.get(step.slot.message_key)
        return row is not None and row.error_code == "SCHEDULE_CANCELLED"

    await eventually(withheld, timeout=30, message="the retry run and withheld")
    assert smtp_sink.messages == []
