"""The Idempotency-Key store in SQL (`idempotency_keys`): expiry, release, purge, and a database that
does not answer (503, never a second job)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from envoi.db.models import IdempotencyKey
from envoi.db.types import utcnow
from envoi.notifications.idempotency import IdempotencyKeys
from envoi.runtime import Envoi
from tests.api.conftest import Api

SMS = {"to": "+33612345678", "message": "Your parcel has shipped"}


async def count_keys(envoi: Envoi) -> int:
    async with envoi.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0)


async def expire_all(envoi: Envoi) -> None:
    async with envoi.db.session() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))


async def test_a_key_past_its_day_names_a_new_job(api: Api) -> None:
    headers = {"Idempotency-Key": "parcel-1"}
    first = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    await expire_all(api.envoi)
    again = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["jobId"] != first.json()["jobId"]
    repeat = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    assert (repeat.status_code, repeat.json()["jobId"]) == (200, again.json()["jobId"])


async def test_one_key_names_one_job_per_job_name(api: Api) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    sms = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    inapp = await api.client.post(
        "/v1/jobs/CREATE_INAPP_NOTIFICATION",
        json={"userId": "u1", "title": "t", "message": "m"},
        headers=headers,
    )
    assert (sms.status_code, inapp.status_code) == (202, 202)
    assert sms.json()["jobId"] != inapp.json()["jobId"]


async def test_purge_deletes_expired_keys_only(api: Api) -> None:
    keys: IdempotencyKeys = api.envoi.idempotency
    await keys.claim("SEND_SMS", "old", "job-old")
    await expire_all(api.envoi)
    await keys.claim("SEND_SMS", "fresh", "job-fresh")
    assert await keys.purge() == 1
    assert (await keys.claim("SEND_SMS", "fresh", "job-other")).job_id == "job-fresh"
    assert await count_keys(api.envoi) == 1


async def test_release_forgets_only_the_callers_own_claim(api: Api) -> None:
    keys: IdempotencyKeys = api.envoi.idempotency
    await keys.claim("SEND_SMS", "k", "job-1")
    await keys.release("SEND_SMS", "k", "job-2")  # a request that lost the claim releases nothing
    assert (await keys.claim("SEND_SMS", "k", "job-3")).outcome == "seen"
    await keys.release("SEND_SMS", "k", "job-1")
    assert (await keys.claim("SEND_SMS", "k", "job-4")).outcome == "new"


async def test_a_keyed_request_with_the_database_down_is_a_503_not_a_second_job(
    no_database: httpx.AsyncClient,
) -> None:
    keyed = await no_database.post("/v1/jobs/SEND_SMS", json=SMS, headers={"Idempotency-Key": "parcel-2"})
    assert keyed.status_code == 503
    assert keyed.headers["Retry-After"] == "5"
    assert "Idempotency-Key cannot be checked" in keyed.json()["detail"]
    # A request without a key needs no database at the API: it is enqueued as before.
    plain: Any = await no_database.post("/v1/jobs/SEND_SMS", json=SMS)
    assert plain.status_code == 202 and plain.json()["mode"] == "queued"
