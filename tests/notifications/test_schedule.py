"""`scheduled_messages` on a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set): a
cancel and a handler racing for one reminder, two moves racing for one appointment, a database that
does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from envoi.db.models import ScheduleStatus
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.embedded_redis import free_port
from envoi.errors import DatabaseUnavailableError
from envoi.notifications.schedule import Release, ScheduleBook, Slot

GROUP = "appointment:apt-1"
#: Rounds of each race: enough for both orders to come up on two cores, bounded in time.
ROUNDS = 30


@pytest.fixture
async def schedule(database_url: str) -> AsyncIterator[ScheduleBook]:
    db = Database(database_url)
    yield ScheduleBook(db)
    await db.dispose()


def slot(kind: str = "reminder-day", group: str = GROUP) -> Slot:
    return Slot.new(group, kind, utcnow() + timedelta(hours=1), job_prefix=f"reminder-apt-1-{kind}")


async def test_a_cancel_and_a_handler_racing_for_one_reminder_never_both_win(schedule: ScheduleBook) -> None:
    for round_ in range(ROUNDS):
        group = f"appointment:race-{round_}"
        s = slot(group=group)
        await schedule.replace(group, ["reminder-day"], [s])
        release, cancel = await asyncio.gather(schedule.release(s.id), schedule.cancel(group))
        if release is Release.SEND:
            # The handler won: the cancel says the reminder is being sent, and did not cancel it.
            assert (cancel.cancelled, cancel.sending) == ([], [s.job_id])
        else:
            # The cancel won: the handler does not send.
            assert release is Release.CANCELLED
            assert (cancel.cancelled, cancel.sending) == ([s.job_id], [])
        # Whoever lost, a second look agrees with the winner.
        assert await schedule.release(s.id) is release


async def test_a_moved_reminder_does_not_send_and_its_replacement_does(schedule: ScheduleBook) -> None:
    old, new = slot(), slot()
    await schedule.replace(GROUP, ["reminder-day"], [old])
    replaced = await schedule.replace(GROUP, ["reminder-day"], [new])
    assert (replaced.superseded, replaced.sending) == ([old.job_id], [])
    assert await schedule.release(old.id) is Release.SUPERSEDED
    assert await schedule.release(new.id) is Release.SEND
    # A retry of the job that took the row goes on (the ledger keeps it from leaving twice).
    assert await schedule.release(new.id) is Release.SEND
    await schedule.mark_sent(new.id)
    assert [row.status for row in await schedule.rows(GROUP)] == [
        ScheduleStatus.SUPERSEDED,
        ScheduleStatus.SENT,
    ]
    # A sent message is history, not "being sent": a cancel has nothing to say about it.
    cancel = await schedule.cancel(GROUP)
    assert (cancel.known, cancel.cancelled, cancel.sending) == (True, [], [])


async def test_a_job_whose_row_is_missing_is_not_sent(schedule: ScheduleBook) -> None:
    assert await schedule.release("01J0000000000000000000000X") is Release.UNKNOWN
    assert (await schedule.cancel("abandon:never")).known is False


async def test_two_moves_racing_for_one_appointment_leave_one_live_reminder(schedule: ScheduleBook) -> None:
    slots = [slot() for _ in range(8)]
    await asyncio.gather(*(schedule.replace(GROUP, ["reminder-day"], [s]) for s in slots))
    rows = await schedule.rows(GROUP)
    assert len(rows) == len(slots)
    assert [row.status for row in rows].count(ScheduleStatus.SCHEDULED) == 1


async def test_replacing_other_kinds_leaves_a_group_s_other_messages_alone(schedule: ScheduleBook) -> None:
    followup, reminder = slot("followup-whatsapp"), slot("reminder-day")
    await schedule.replace(GROUP, ["followup-whatsapp"], [followup])
    await schedule.replace(GROUP, ["reminder-day"], [reminder])
    assert (await schedule.replace(GROUP, ["reminder-day"], [])).superseded == [reminder.job_id]
    assert await schedule.release(followup.id) is Release.SEND
    with pytest.raises(ValueError, match="belong"):
        await schedule.replace("abandon:x", None, [followup])


@pytest.mark.parametrize("operation", ["replace", "cancel"])
async def test_a_database_that_does_not_answer_records_nothing_and_says_so(operation: str) -> None:
    schedule = ScheduleBook(Database(f"postgresql://envoi@127.0.0.1:{free_port()}/envoi"))
    with pytest.raises(DatabaseUnavailableError, match="nothing was"):
        if operation == "replace":
            await schedule.replace(GROUP, ["reminder-day"], [slot()])
        else:
            await schedule.cancel(GROUP)
    await schedule.db.dispose()


async def test_a_failed_send_gives_the_row_back_so_a_cancel_before_the_retry_stops_it(
    schedule: ScheduleBook,
) -> None:
    s = slot()
    await schedule.replace(GROUP, ["reminder-day"], [s])
    assert await schedule.release(s.id) is Release.SEND
    # While it is in flight, a move reports it and leaves it alone.
    moving = await schedule.replace(GROUP, ["reminder-day"], [])
    assert (moving.superseded, moving.sending) == ([], [s.job_id])
    await schedule.give_back(s.id)  # the send failed: it will be retried
    cancel = await schedule.cancel(GROUP)
    assert (cancel.cancelled, cancel.sending) == ([s.job_id], [])
    assert await schedule.release(s.id) is Release.CANCELLED, "the retry does not send"
