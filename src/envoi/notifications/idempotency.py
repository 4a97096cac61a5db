"""HTTP Idempotency-Key: the first request's job id, kept in SQL (`idempotency_keys`) for a day.

The claim is `INSERT ... ON CONFLICT DO NOTHING` on (scope, sha256 of the key), then a read of the row
that won: of any number of concurrent requests with one key, exactly one inserts and enqueues, the
others answer with its job id. It does not depend on Redis: with Redis down, the one winner runs its job
inline and the others find its id (before, each claim was "unchecked" and every request ran a job).
A database that does not answer raises `DatabaseUnavailableError`: the API answers 503 rather than
risk two jobs.

Redis is not kept in front as a cache. A new key must reach SQL anyway (a key known only to Redis is
forgotten by an outage), so a cache could only spare the read of a key seen before, the rare case, at
the price of a Redis round trip on every new one. The claim costs one database write per keyed request
(a few milliseconds; `bench/idempotency.py`, docs/benchmarks.md); requests without a key pay nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from envoi.db.availability import DATABASE_DOWN_ERRORS, or_unavailable
from envoi.db.models import IdempotencyKey
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.errors import DatabaseUnavailableError

log = logging.getLogger("envoi.notifications")

#: How long a key is remembered (README: "kept 24 h").
TTL = timedelta(hours=24)
#: How often a worker deletes expired keys (an expired key is ignored by the claim in any case).
PURGE_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class KeyClaim:
    #: "new": this request owns the key and enqueues; "seen": an earlier request did.
    outcome: Literal["new", "seen"]
    job_id: str


def key_hash(key: str) -> str:
    # Hashed: the caller's key is free text of any length, and may carry something personal.
    return hashlib.sha256(key.encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, scope: str, key: str, job_id: str) -> KeyClaim:
        """Claim `key` for `job_id`, or answer the job id of the request that claimed it first."""
        return await or_unavailable(
            lambda: self._claim(scope, key_hash(key), job_id), what="the Idempotency-Key cannot be checked"
        )

    async def _claim(self, scope: str, digest: str, job_id: str) -> KeyClaim:
        # Three rounds: an expired row taken over by another request between our reads is the only
        # reason to go round again.
        for _ in range(3):
            now = utcnow()
            values = {
                "scope": scope,
                "key_hash": digest,
                "job_id": job_id,
                "created_at": now,
                "expires_at": now + TTL,
            }
            dialect = postgresql if self.db.dialect == "postgresql" else sqlite
            # RETURNING, not the row count: psycopg reports -1 for an ORM INSERT.
            insert = (
                dialect.insert(IdempotencyKey)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["scope", "key_hash"])
                .returning(IdempotencyKey.job_id)
            )
            # A Core connection, not an ORM session: a third cheaper, on every keyed request.
            async with self.db.engine.begin() as connection:
                if (await connection.execute(insert)).scalar_one_or_none() is not None:
                    return KeyClaim("new", job_id)
                row = (
                    await connection.execute(
                        select(IdempotencyKey.job_id, IdempotencyKey.expires_at).where(
                            IdempotencyKey.scope == scope, IdempotencyKey.key_hash == digest
                        )
                    )
                ).one_or_none()
            if row is None:
                continue  # released between the insert and the read: try again
            if row.expires_at > now:
                return KeyClaim("seen", row.job_id)
            # Expired but not purged yet: take it over, unless another request just did.
            take_over = (
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.scope == scope,
                    IdempotencyKey.key_hash == digest,
                    IdempotencyKey.expires_at <= now,
                )
                .values(job_id=job_id, created_at=now, expires_at=now + TTL)
            )
            async with self.db.engine.begin() as connection:
                if _changed(await connection.execute(take_over)):
                    return KeyClaim("new", job_id)
        raise DatabaseUnavailableError("Could not claim the Idempotency-Key (too much contention)")

    async def release(self, scope: str, key: str, job_id: str) -> None:
        """Forget a key whose job could not be enqueued, so that the caller may try again. Only this
        request's claim is deleted (`job_id`): never a key another request holds."""
        statement = delete(IdempotencyKey).where(
            IdempotencyKey.scope == scope,
            IdempotencyKey.key_hash == key_hash(key),
            IdempotencyKey.job_id == job_id,
        )
        try:
            async with self.db.session() as session:
                await session.execute(statement)
        except DATABASE_DOWN_ERRORS:
            # The key stays until it expires: a retry answers 200 with a job id that does not exist.
            log.warning("Could not release an Idempotency-Key (database unavailable)")

    async def purge(self) -> int:
        """Delete expired keys; returns how many."""
        statement = delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())
        async with self.db.session() as session:
            return max(int(getattr(await session.execute(statement), "rowcount", 0) or 0), 0)

    async def purge_forever(self, interval_s: float = PURGE_INTERVAL_S) -> None:
        """A worker companion: purge now, then every `interval_s`, until cancelled."""
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("Purged %d expired Idempotency-Key(s)", purged)
            except DATABASE_DOWN_ERRORS as exc:
                log.warning("Could not purge expired Idempotency-Keys: %s", type(exc).__name__)
            await asyncio.sleep(interval_s)


def _changed(result: Any) -> bool:
    return cast("CursorResult[Any]", result).rowcount == 1
