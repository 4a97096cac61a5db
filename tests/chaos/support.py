"""What the chaos tests look at: the queue drained, messages per recipient, dead letters, figures."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from envoi.db.models import FailedJob, MessageDelivery
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.fixtures.smtp import SmtpSink

#: Job states that mean "not done yet".
UNFINISHED = ("waiting", "active", "delayed", "prioritized", "paused", "waiting-children")


async def drained(envoi: Envoi, queue: str = NOTIFICATIONS_QUEUE) -> bool:
    """No job left to run (waiting, running or delayed). None from Redis (down) counts as not drained."""
    counts = await envoi.queue.counts(queue)
    return counts is not None and sum(counts.get(state, 0) for state in UNFINISHED) == 0


def received(sink: SmtpSink) -> Counter[str]:
    """Messages received per recipient."""
    return Counter(rcpt for message in sink.messages for rcpt in message.rcpt_tos)


async def dead_letter_count(envoi: Envoi) -> int:
    async with envoi.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(FailedJob)) or 0)


async def dead_letter_job_ids(envoi: Envoi) -> list[str | None]:
    async with envoi.db.session() as session:
        return list((await session.scalars(select(FailedJob.job_id))).all())


async def ledger_statuses(envoi: Envoi) -> Counter[str]:
    async with envoi.db.session() as session:
        rows = await session.execute(
            select(MessageDelivery.status, func.count()).group_by(MessageDelivery.status)
        )
        return Counter({status: int(count) for status, count in rows})


async def enqueue_emails(envoi: Envoi, recipients: list[str], **options: Any) -> list[str]:
    """One SEND_EMAIL per recipient, no idempotency key (the ledger keys on the job); their job ids."""
    ids = []
    for to in recipients:
        data = {"to": to, "subject": "Rappel", "html": f"<p>Bonjour {to}</p>"}
        result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data, **options)
        assert result.mode == "queued"
        ids.append(result.job_id)
    return ids


def connections(pid: int, port: int) -> int:
    """Established TCP connections of process `pid` to 127.0.0.1:`port` (Linux's /proc): how a test
    knows that a worker is in the middle of a send before it kills it."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.exists() else ():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
                count += remote_port == port and state == "01" and inode in inodes
    return count


def recipients(tag: str, count: int) -> list[str]:
    return [f"{tag}-{i:05d}@example.com" for i in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def report(title: str, **figures: Any) -> None:
    """A line in the suite's output (pytest shows it with -s, and with a failure's captured output)."""
    shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\n[chaos] {title}: {shown}", flush=True)
