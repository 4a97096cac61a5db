"""Helpers for hostile-input tests: raw JSON bodies (lone surrogates, NaN), nesting, a producer's queue."""

from __future__ import annotations

import json
from typing import Any

import httpx
from bullmq import Queue
from sqlalchemy import select

from envoi.config import Settings
from envoi.db.models import Notification
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.api.conftest import Api


def raw_json(value: Any) -> bytes:
    """JSON as a JavaScript client writes it: `\\ud800` escapes for lone surrogates; NaN and Infinity as
    Python's encoder writes them (what `JSON.parse` would refuse, and Python's parser accepts)."""
    return json.dumps(value).encode("ascii")


async def post_raw(client: httpx.AsyncClient, path: str, body: Any, method: str = "POST") -> httpx.Response:
    content = body if isinstance(body, bytes) else raw_json(body)
    return await client.request(method, path, content=content, headers={"content-type": "application/json"})


def nested(levels: int, leaf: Any = 1) -> Any:
    """`{"a": {"a": ... leaf}}`, `levels` objects deep."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def nested_text(levels: int) -> bytes:
    """The same as JSON text, built without a recursive encoder."""
    return b'{"a":' * levels + b"1" + b"}" * levels


async def queued(api: Api) -> int:
    counts = await api.envoi.queue.counts(NOTIFICATIONS_QUEUE) or {}
    return sum(counts.values())


def producer(settings: Settings) -> Queue:
    """A foreign producer: bullmq's own `Queue`, writing job data straight into Redis."""
    return Queue(
        NOTIFICATIONS_QUEUE,
        {
            "connection": settings.redis.connection_kwargs(connect_timeout_s=1),
            "prefix": settings.redis_prefix,
        },
    )


async def inbox_of(envoi: Envoi, user_id: str) -> list[Notification]:
    async with envoi.db.session() as session:
        query = select(Notification).where(Notification.user_id == user_id)
        return list((await session.scalars(query)).all())
