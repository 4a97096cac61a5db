"""Quiet hours in the recipient's time zone: with a window around the current local time, the marketing
email is moved to bullmq's delayed set until the window's end (its run time read from Redis) while the
transactional one leaves now; a recipient's own setting wins over QUIET_HOURS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from envoi.notifications.jobs import SendEmailJob
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.quiet_hours import QuietHours
from envoi.worker import DEFER_SLACK_MS
from tests.api.conftest import Api
from tests.fixtures.smtp import SmtpSink
from tests.helpers import bull_queue, eventually, job_state, redis_client

LEAD = "lea@example.com"
#: A half-hour offset from UTC: a zone mistaken for UTC (or a whole-hour one) shows.
ZONE = "Asia/Kolkata"


def window_around_now() -> tuple[str, datetime]:
    """A window from an hour ago to two hours ahead, local time in ZONE; and its end in UTC, computed
    here by hand (not by envoi's QuietHours)."""
    local = datetime.now(ZoneInfo(ZONE))
    start, end = local - timedelta(hours=1), (local + timedelta(hours=2)).replace(second=0, microsecond=0)
    return f"{start:%H:%M}-{end:%H:%M}", end.astimezone(UTC)


def email(subject: str, **extra: str) -> SendEmailJob:
    return SendEmailJob.model_validate({"to": LEAD, "subject": subject, "html": "<p>x</p>", **extra})


async def run_at_ms(api: Api, job_id: str) -> int:
    """The delayed job's run time as bullmq keeps it: the score in the delayed set, 12 bits of counter."""
    settings = api.envoi.settings
    score = await redis_client(api.envoi.queue).zscore(
        f"{settings.redis_prefix}:{NOTIFICATIONS_QUEUE}:delayed", job_id
    )
    assert score is not None, "not in the delayed set"
    return int(score) // 0x1000


async def test_marketing_waits_until_the_window_ends_and_transactional_goes_now(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    window, end = window_around_now()
    api = await start_api(quiet_hours=window)
    promo = await api.envoi.queue.enqueue_job(
        NOTIFICATIONS_QUEUE, email("Promo", category="marketing", timezone=ZONE)
    )
    receipt = await api.envoi.queue.enqueue_job(NOTIFICATIONS_QUEUE, email("Receipt", timezone=ZONE))
    [sent] = await eventually(lambda: smtp_sink.messages, message="the transactional email")
    assert sent.message["Subject"] == "Receipt"

    async def receipt_done() -> bool:
        return await job_state(api.envoi, NOTIFICATIONS_QUEUE, receipt.job_id) in ("completed", "unknown")

    await eventually(receipt_done, message="the transactional job completed")

    async def delayed() -> bool:
        return await job_state(api.envoi, NOTIFICATIONS_QUEUE, promo.job_id) == "delayed"

    await eventually(delayed, message="the marketing email postponed")
    expected = int(end.timestamp() * 1000) + DEFER_SLACK_MS
    assert abs(await run_at_ms(api, promo.job_id) - expected) < 1000
    job = await _job(api, promo.job_id)
    assert job.attemptsMade == 0, "a postponement spends no attempt"
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["Receipt"]


async def test_the_recipients_own_setting_wins(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    window, _ = window_around_now()
    api = await start_api(quiet_hours=window)
    # No quiet hours for this recipient, whatever QUIET_HOURS says.
    answer = await api.client.put(f"/v1/recipients/{LEAD}/preferences", json={"quietHours": ""})
    assert answer.json()["quietHours"] == ""
    await api.envoi.queue.enqueue_job(
        NOTIFICATIONS_QUEUE, email("Promo", category="marketing", timezone=ZONE)
    )
    await eventually(lambda: smtp_sink.messages, message="the marketing email, sent now")


async def _job(api: Api, job_id: str) -> Any:
    return await bull_queue(api.envoi.queue, NOTIFICATIONS_QUEUE).getJob(job_id)


@pytest.mark.parametrize(
    ("window", "local", "ends"),
    [
        ("21:00-08:00", "2026-12-01T22:30", "2026-12-02T08:00"),  # across midnight, before it
        ("21:00-08:00", "2026-12-02T03:00", "2026-12-02T08:00"),  # across midnight, after it
        ("21:00-08:00", "2026-12-02T08:00", None),  # the end is outside
        ("21:00-08:00", "2026-12-01T21:00", "2026-12-02T08:00"),  # the start is inside
        ("12:00-14:00", "2026-12-01T13:59", "2026-12-01T14:00"),
        ("12:00-14:00", "2026-12-01T11:59", None),
        # Paris leaves summer time on 2026-10-25 at 03:00: the window still ends at 08:00 local (07:00 UTC).
        ("21:00-08:00", "2026-10-24T23:00", "2026-10-25T08:00"),
    ],
)
def test_the_window_ends_at_its_local_end(window: str, local: str, ends: str | None) -> None:
    paris = ZoneInfo("Europe/Paris")
    parsed = QuietHours.parse(window)
    assert parsed is not None
    now = datetime.fromisoformat(local).replace(tzinfo=paris)
    got = parsed.end_if_inside(now.astimezone(UTC), "Europe/Paris")
    assert got == (datetime.fromisoformat(ends).replace(tzinfo=paris).astimezone(UTC) if ends else None)
    if got is not None:
        assert got.astimezone(paris).time() == time(8, 0) or window.startswith("12")


@pytest.mark.parametrize(
    "text",
    [
        "9pm-8am",
        "21:00",
        "21:00-24:00",
        "21:00-21:00",
        "21:0-08:00",
        "\u0662\u0661:\u0660\u0660-\u0660\u0668:\u0660\u0660",
    ],
)
def test_a_bad_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|differ"):
        QuietHours.parse(text)
