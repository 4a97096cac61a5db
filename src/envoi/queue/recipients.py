"""A hashed index from a recipient to the jobs addressed to them: the admin search finds a job by its
recipient without reading a single payload.

    envoi:{prefix}:recipients:{sha256}   sorted set; member `{queue}:{jobId}`, score the enqueue time (ms)

The key is the SHA-256 of the normalised recipient (an email address trimmed and lower-cased, a phone
number in E.164 without the `whatsapp:` prefix), as the delivery ledger hashes keys too long for its
column: Redis never holds the address in clear. `QueueService` writes it beside each `add` of a job whose
data names a recipient (`to`, `email`, `phone`, `recipient` at the top level); jobs added by another
producer (Node) are not indexed. A recipient keeps their newest MAX_PER_RECIPIENT entries, and the key
expires RECIPIENT_INDEX_DAYS after their last job. An entry outlives its job: readers look the job up.
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

from envoi.queue.redis_backend import RedisBackend, RedisDoor, text

log = logging.getLogger("envoi.queue")

#: Top-level fields of job data that name a recipient (the notification jobs use `to`).
RECIPIENT_FIELDS = ("to", "email", "phone", "recipient")
MAX_PER_RECIPIENT = 200
WHATSAPP_PREFIX = "whatsapp:"


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
    #: When it was enqueued (ms since the epoch).
    enqueued_ms: int


class RecipientIndex:
    def __init__(self, door: RedisDoor, *, retention_days: int) -> None:
        self._door = door
        self.retention_s = retention_days * 86400

    @property
    def enabled(self) -> bool:
        return self.retention_s > 0

    async def write(self, redis: RedisBackend, digests: list[str], queue: str, job_id: str) -> None:
        """Index one job; called inside an enqueue's Redis operation. Never raises: a job is not refused,
        nor run a second time inline, because its index entry could not be written."""
        if not digests or not self.enabled:
            return
        member, now_ms = f"{queue}:{job_id}", int(time.time() * 1000)
        try:
            async with asyncio.timeout(redis.budget_s):
                pipe = redis.client.pipeline(transaction=False)
                for digest in digests:
                    key = redis.keys.recipients(digest)
                    pipe.zadd(key, {member: now_ms})
                    pipe.zremrangebyrank(key, 0, -(MAX_PER_RECIPIENT + 1))
                    pipe.expire(key, self.retention_s)
                await pipe.execute()
        except Exception as exc:
            log.warning("Recipient index not written for job %s (%s)", job_id, type(exc).__name__)

    async def find(self, recipient: str, *, limit: int) -> list[IndexedJob]:
        """The jobs enqueued for `recipient`, newest first. Raises `QueueUnavailableError`."""
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
