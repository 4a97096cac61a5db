"""A hashed index from a recipient to their jobs: the admin search finds a job by its recipient without
reading a single payload.

    envoi:{prefix}:recipients:{sha256}   sorted set; member `{queue}:{jobId}`, score when indexed (ms)

The key is the SHA-256 of the normalised recipient (an email address trimmed and lower-cased, a phone
number in E.164 without the `whatsapp:` prefix), as the delivery ledger hashes keys too long for its
column: Redis never holds the address in clear. The recipient is read from the job's data (`to`, `email`,
`phone`, `recipient` at the top level).

Two kinds of jobs are indexed, the ones an operator looks for: a **delayed** job when `QueueService`
adds it (a reminder due tomorrow), and a job that **failed for good** when its dead letter is recorded.
Jobs that run at once and succeed are not: bullmq removes them on completion, there would be nothing to
show, and indexing them would cost every enqueue a second Redis command (`bench/enqueue.py`). Jobs added
by another producer (Node) are indexed only if they fail. A recipient keeps their newest
MAX_PER_RECIPIENT entries, and the key expires RECIPIENT_INDEX_DAYS after the last. An entry outlives its
job: readers look the job up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import phonenumbers
from redis.commands.core import AsyncScript

from envoi.errors import QueueUnavailableError
from envoi.queue.redis_backend import RedisBackend, RedisDoor, text

log = logging.getLogger("envoi.queue")

#: Top-level fields of job data that name a recipient (the notification jobs use `to`).
RECIPIENT_FIELDS = ("to", "email", "phone", "recipient")
MAX_PER_RECIPIENT = 200
WHATSAPP_PREFIX = "whatsapp:"
#: One round trip per enqueue, whatever the number of recipients: add, keep the newest, push the expiry.
_WRITE = """
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(ARGV[3]) + 1))
  redis.call('EXPIRE', key, ARGV[4])
end
"""


def normalise(value: str) -> str | None:
    """The form a recipient is indexed under; None for text that is neither an address nor a number."""
    value = value.strip()
    if "@" in value:
        return value.lower() if value.count("@") == 1 and not value.startswith("@") else None
    number = value.removeprefix(WHATSAPP_PREFIX)
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def recipient_digest(value: str) -> str | None:
    normal = normalise(value)
    return hashlib.sha256(normal.encode()).hexdigest() if normal else None


def _recipients(data: Any) -> Iterator[str]:
    if not isinstance(data, dict):
        return
    for field in RECIPIENT_FIELDS:
        value = data.get(field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                yield item


def digests_of(data: Any) -> list[str]:
    """The digests of the recipients named in job data, each once."""
    found = (recipient_digest(value) for value in _recipients(data))
    return sorted({digest for digest in found if digest})


@dataclass(frozen=True, slots=True)
class IndexedJob:
    queue: str
    job_id: str
    #: When it was indexed (ms since the epoch).
    indexed_ms: int


class RecipientIndex:
    def __init__(self, door: RedisDoor, *, retention_days: int) -> None:
        self._door = door
        self.retention_s = retention_days * 86400
        self._script: AsyncScript | None = None

    @property
    def enabled(self) -> bool:
        return self.retention_s > 0

    async def index(self, queue: str, job_id: str, data: Any) -> None:
        """Index a job (a delayed one just added, a final failure just recorded). Never raises."""
        digests = digests_of(data)
        if not digests or not self.enabled:
            return
        try:
            await self._door(lambda redis: self.write(redis, digests, queue, job_id))
        except QueueUnavailableError:
            log.warning("Recipient index not written for job %s: Redis unavailable", job_id)

    async def write(self, redis: RedisBackend, digests: list[str], queue: str, job_id: str) -> None:
        """Index one job on `redis`. Never raises: a job is not refused, nor run a second time inline,
        because its index entry could not be written (the failure is logged)."""
        if not digests or not self.enabled:
            return
        member, now_ms = f"{queue}:{job_id}", int(time.time() * 1000)
        if self._script is None:
            self._script = redis.client.register_script(_WRITE)
        keys = [redis.keys.recipients(digest) for digest in digests]
        try:
            async with asyncio.timeout(redis.budget_s):
                await self._script(
                    keys=keys, args=[member, now_ms, MAX_PER_RECIPIENT, self.retention_s], client=redis.client
                )
        except Exception as exc:
            log.warning("Recipient index not written for job %s (%s)", job_id, type(exc).__name__)

    async def find(self, recipient: str, *, limit: int) -> list[IndexedJob]:
        """The jobs indexed for `recipient`, newest first. Raises `QueueUnavailableError`."""
        digest = recipient_digest(recipient)
        if digest is None or not self.enabled:
            return []

        async def read(redis: RedisBackend) -> list[IndexedJob]:
            key = redis.keys.recipients(digest)
            entries: list[Any] = await redis.client.zrevrange(key, 0, limit - 1, withscores=True)
            found = []
            for entry in entries:
                queue, _, job_id = (text(entry[0]) or "").partition(":")
                if job_id:
                    found.append(IndexedJob(queue, job_id, int(entry[1])))
            return found

        return await self._door(read)
