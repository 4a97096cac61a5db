"""Scheduled messages through the HTTP API: the abandon-recovery sequence and its cancel, reminders moved
and cancelled; each route answers what really happened, with Redis up, with Redis unreachable, with the
database unreachable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.notifications.service import abandon_group
from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api.conftest import API_KEY, Api
from tests.api.test_flows import appointment
from tests.helpers import job_state

ABANDON = {"email": "jane@example.com", "firstName": "Jane", "resumeUrl": "https://app.example.com/resume/42"}


async def states(api: Api, job_ids: list[str]) -> set[str]:
    return {await job_state(api.envoi, NOTIFICATIONS_QUEUE, job_id) for job_id in job_ids}


@pytest.fixture
async def cut_off(make_api: Callable[..., Any], make_settings: Callable[..., Settings]) -> Api:
    """A second API on the same database whose Redis is unreachable (a closed port)."""
    api: Api = await make_api(
        make_settings(envoi_api_key=API_KEY, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    return api


async def test_abandon_recovery_schedules_the_sequence_and_answers_its_id(api: Api) -> None:
    response = await api.client.post("/v1/flows/abandon-recovery", json=ABANDON)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert set(answer) == {"jobs", "abandonId", "mode", "warnings"} and answer["mode"] == "queued"
    assert answer["warnings"] == []
    assert [job["jobName"] for job in answer["jobs"]] == ["SEND_EMAIL"] * 3
    assert await states(api, [job["jobId"] for job in answer["jobs"]]) == {"delayed"}
    assert all(":" not in job["jobId"] for job in answer["jobs"])

    again = (await api.client.post("/v1/flows/abandon-recovery", json=ABANDON)).json()
    assert again["abandonId"] == answer["abandonId"], "derived from email and resumeUrl: stable"
    assert await states(api, [job["jobId"] for job in answer["jobs"]]) == {"unknown"}, "replaced"

    named = await api.client.post(
        "/v1/flows/abandon-recovery", json={**ABANDON, "abandonId": "form_7.lead-3", "offer": "-20 %"}
    )
    assert named.json()["abandonId"] == "form_7.lead-3"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ABANDON, "abandonId": "form:7"}, "abandonId"),
        ({**ABANDON, "abandonId": ""}, "abandonId"),
        ({**ABANDON, "offer": "x" * 501}, "offer"),
        ({**ABANDON, "offer": ""}, "offer"),
    ],
)
async def test_abandon_recovery_refuses_bad_input(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.client.post("/v1/flows/abandon-recovery", json=body)
    assert response.status_code == 422
    assert field in [error["path"] for error in response.json()["errors"]]
    counts = await api.envoi.queue.counts(NOTIFICATIONS_QUEUE) or {}
    assert counts.get("delayed", 0) == 0


async def test_cancelling_an_abandon_recovery(api: Api) -> None:
    assert (await api.client.delete("/v1/abandons/never-seen/recovery")).status_code == 404
    assert (await api.client.delete("/v1/abandons/bad:id/recovery")).status_code == 422

    answer = (await api.client.post("/v1/flows/abandon-recovery", json=ABANDON)).json()
    path = f"/v1/abandons/{answer['abandonId']}/recovery"
    deleted = await api.client.delete(path)
    assert deleted.status_code == 204, deleted.text
    assert await states(api, [job["jobId"] for job in answer["jobs"]]) == {"unknown"}
    assert (await api.client.delete(path)).status_code == 204, "idempotent"


async def test_a_step_being_sent_when_the_cancel_comes_is_reported(api: Api) -> None:
    answer = (await api.client.post("/v1/flows/abandon-recovery", json=ABANDON)).json()
    first, *later = await api.envoi.schedule.rows(abandon_group(answer["abandonId"]))
    # What the handler does before sending step 1: it wins the row, so the cancel cannot.
    await api.envoi.schedule.release(first.id)
    deleted = await api.client.delete(f"/v1/abandons/{answer['abandonId']}/recovery")
    assert deleted.status_code == 202
    assert deleted.json() == {
        "cancelled": [row.job_id for row in later],
        "sending": [first.job_id],
        "removedFromQueue": True,
    }


async def test_with_redis_unreachable_cancels_and_moves_are_recorded_and_say_so(
    api: Api, cut_off: Api
) -> None:
    abandon = (await api.client.post("/v1/flows/abandon-recovery", json=ABANDON)).json()
    deleted = await cut_off.client.delete(f"/v1/abandons/{abandon['abandonId']}/recovery")
    assert deleted.status_code == 202
    assert deleted.json()["removedFromQueue"] is False
    assert sorted(deleted.json()["cancelled"]) == sorted(job["jobId"] for job in abandon["jobs"])

    scheduled = (await api.client.put("/v1/appointments/apt-5/reminders", json=appointment("apt-5"))).json()
    old_ids = sorted(r["jobId"] for r in scheduled["reminders"])
    moved = await cut_off.client.put(
        "/v1/appointments/apt-5/reminders", json=appointment("apt-5", in_hours=96)
    )
    assert moved.status_code == 202
    body = moved.json()
    assert body["reminders"] == [] and body["removedFromQueue"] is False
    assert sorted(body["superseded"]) == old_ids
    assert {r["kind"] for r in body["deadLettered"]} == {"day", "hour"}

    cancelled = await cut_off.client.delete("/v1/appointments/apt-5/reminders")
    assert cancelled.status_code == 202
    assert cancelled.json()["removedFromQueue"] is False
    assert len(cancelled.json()["cancelled"]) == len(body["deadLettered"])
    # Nothing recorded for this appointment, and Redis (which may hold reminders from before the
    # records) cannot be asked: nothing could be done.
    unknown = await cut_off.client.delete("/v1/appointments/apt-never/reminders")
    assert unknown.status_code == 503 and unknown.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/appointments/apt-6/reminders", appointment("apt-6")),
        ("DELETE", "/v1/appointments/apt-6/reminders", None),
        ("POST", "/v1/flows/abandon-recovery", ABANDON),
        ("DELETE", "/v1/abandons/a-1/recovery", None),
    ],
)
async def test_with_the_database_unreachable_nothing_is_scheduled_or_cancelled_and_the_answer_is_503(
    no_database: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await no_database.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert "nothing was" in response.json()["detail"]
