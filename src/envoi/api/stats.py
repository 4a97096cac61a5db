"""Read-only figures for the admin page: dead letters per hour over the last day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from envoi.db.models import FailedJob
from envoi.runtime import Envoi

HOURS = 24


async def failures_per_hour(envoi: Envoi, *, now: datetime | None = None) -> list[tuple[datetime, int]]:
    """`HOURS` buckets, oldest first, each the start of an hour (UTC) and the dead letters created in it."""
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=HOURS)
    buckets = {start + timedelta(hours=i): 0 for i in range(HOURS)}
    async with envoi.db.session() as session:
        created = await session.scalars(select(FailedJob.created_at).where(FailedJob.created_at >= start))
        for moment in created:
            hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            if hour in buckets:
                buckets[hour] += 1
    return sorted(buckets.items())
