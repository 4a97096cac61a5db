"""Raw jobs, authentication and Idempotency-Key, through the real app on real Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from envoi.db.models import IdempotencyKey
from envoi.notifications.idempotency import key_hash
from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api.conftest import ADMIN_TOKEN, Api
from tests.helpers import bull_queue, job_state

SMS = {"to": "+33612345678", "message": "Your code is 123456"}


async def waiting_jobs(api: Api) -> int:
    counts = await api.envoi.queue.counts(NOTIFICATIONS_QUEUE) or {}
    return counts.get("waiting", 0) + counts.get("delayed", 0)


@pytest.mark.parametrize(
    ("job_name", "data"),
    [
        ("SEND_EMAIL", {"to": "jane@example.com", "subject": "Hi", "html": "<p>Hi</p>"}),
        ("SEND_SMS", SMS),
        ("SEND_WHATSAPP", {"to": "whatsapp:+33612345678", "message": "Hi"}),
        ("CREATE_INAPP_NOTIFICATION", {"userId": "u1", "title": "Hi", "message": "Hello"}),
    ],
)
async def test_each_job_is_enqueued(api: Api, job_name: str, data: dict[str, Any]) -> None:
    response = await api.client.post(f"/v1/jobs/{job_name}", json=data)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["mode"] == "queued"
    assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, body["jobId"]) == "waiting"
    job = await bull_queue(api.envoi.queue, NOTIFICATIONS_QUEUE).getJob(body["jobId"])
    assert job.name == job_name


async def test_missing_token_is_401(api: Api) -> None:
    response = await api.anonymous.post("/v1/jobs/SEND_SMS", json=SMS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert await waiting_jobs(api) == 0


async def test_wrong_token_is_403(api: Api) -> None:
    response = await api.anonymous.post(
        "/v1/jobs/SEND_SMS", json=SMS, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 403
    assert await waiting_jobs(api) == 0


@pytest.mark.parametrize(
    ("job_name", "data", "path"),
    [
        ("SEND_EMAIL", {"to": "not-an-email", "subject": "Hi", "html": "x"}, "to"),
        ("SEND_SMS", {"to": "0612345678", "message": "Hi"}, "to"),
        ("SEND_SMS", {"to": "+33612345678"}, "message"),
        ("CREATE_INAPP_NOTIFICATION", {"userId": "u1", "title": "", "message": "x"}, "title"),
    ],
)
async def test_invalid_data_is_422_with_field_path(
    api: Api, job_name: str, data: dict[str, Any], path: str
) -> None:
    response = await api.client.post(f"/v1/jobs/{job_name}", json=data)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["path"] for e in errors] == [path]
    assert errors[0]["reason"]
    assert await waiting_jobs(api) == 0


async def test_unknown_job_name_is_404(api: Api) -> None:
    response = await api.client.post("/v1/jobs/SEND_PIGEON", json=SMS)
    assert response.status_code == 404
    assert response.json()["detail"] == "No job named 'SEND_PIGEON'"
    assert await waiting_jobs(api) == 0


async def test_a_job_name_that_cannot_be_one_is_422_naming_it(api: Api) -> None:
    response = await api.client.post("/v1/jobs/SEND%20PIGEON", json=SMS)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "jobName"


async def test_body_must_be_json_object(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs/SEND_SMS", content=b"[1, 2", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_idempotency_key_answers_first_job_and_enqueues_once(api: Api) -> None:
    headers = {"Idempotency-Key": "order-42-sms"}
    first = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    second = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["jobId"] == first.json()["jobId"]
    assert await waiting_jobs(api) == 1
    job = await bull_queue(api.envoi.queue, NOTIFICATIONS_QUEUE).getJob(first.json()["jobId"])
    assert job.data["metadata"]["idempotencyKey"] == "order-42-sms"
    # The key is kept in SQL (its hash, never the key), with the first job's id, for a day.
    async with api.envoi.db.session() as session:
        [row] = (await session.scalars(select(IdempotencyKey))).all()
    assert (row.scope, row.key_hash, row.job_id) == (
        "SEND_SMS",
        key_hash("order-42-sms"),
        first.json()["jobId"],
    )
    assert timedelta(hours=23) < row.expires_at - datetime.now(UTC) <= timedelta(hours=24)


async def test_rejected_request_does_not_burn_its_key(api: Api) -> None:
    headers = {"Idempotency-Key": "k-1"}
    bad = await api.client.post("/v1/jobs/SEND_SMS", json={"to": "nope", "message": "x"}, headers=headers)
    assert bad.status_code == 422
    good = await api.client.post("/v1/jobs/SEND_SMS", json=SMS, headers=headers)
    assert good.status_code == 202


async def test_fallback_mode_answers_sync(make_api: Callable[..., Any], make_settings: Any) -> None:
    api = await make_api(make_settings(queue_enabled=False, envoi_api_key=None))
    response = await api.anonymous.post(
        "/v1/jobs/CREATE_INAPP_NOTIFICATION",
        json={"userId": "u1", "title": "Hi", "message": "Hello"},
        headers={"Idempotency-Key": "inline-1"},
    )
    assert response.status_code == 202
    assert response.json()["mode"] == "sync"
