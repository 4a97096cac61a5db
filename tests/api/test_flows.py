"""Flows and reminders: each route enqueues its jobs on real Redis; bad input is 422 and enqueues nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api.conftest import Api
from tests.helpers import job_state


def appointment(appointment_id: str = "apt-1", *, in_hours: float = 72, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "appointmentId": appointment_id,
        "scheduledAt": (datetime.now(UTC) + timedelta(hours=in_hours)).isoformat(),
        "durationMinutes": 30,
        "visioUrl": "https://meet.example.com/abc",
        "timezone": "Europe/Paris",
        "locale": "en",
        "lead": {"firstName": "Jane", "email": "jane@example.com", "phone": "+33612345678"},
        "closer": {"firstName": "Paul", "lastName": "Martin", "email": "paul@example.com"},
    }
    body.update(overrides)
    return body


async def queued(api: Api) -> int:
    counts = await api.envoi.queue.counts(NOTIFICATIONS_QUEUE) or {}
    return sum(counts.get(state, 0) for state in ("waiting", "delayed"))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/flows/verification-email",
            {"email": "jane@example.com", "firstName": "Jane", "verificationToken": "123456", "locale": "fr"},
        ),
        (
            "/v1/flows/invitation-email",
            {
                "email": "jane@example.com",
                "organizationName": "Acme",
                "inviterName": "Paul",
                "invitationToken": "tok-1",
                "role": "admin",
            },
        ),
        (
            "/v1/flows/abandon-recovery",
            {"email": "jane@example.com", "resumeUrl": "https://app.example.com/resume/1"},
        ),
        ("/v1/flows/appointment-confirmation", appointment()),
    ],
)
async def test_flow_enqueues_its_jobs(api: Api, path: str, body: dict[str, Any]) -> None:
    response = await api.client.post(path, json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["mode"] == "queued"
    assert answer["jobs"]
    for job in answer["jobs"]:
        assert job["jobName"] == "SEND_EMAIL"
        assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, job["jobId"]) in ("waiting", "delayed")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/flows/verification-email",
            {"email": "nope", "firstName": "J", "verificationToken": "1"},
            "email",
        ),
        (
            "/v1/flows/verification-email",
            {"email": "j@example.com", "firstName": "J", "verificationToken": "1", "locale": "de"},
            "locale",
        ),
        ("/v1/flows/abandon-recovery", {"email": "j@example.com"}, "resumeUrl"),
        (
            "/v1/flows/appointment-confirmation",
            appointment(scheduledAt="2030-01-01T10:00:00"),
            "scheduledAt",
        ),
        (
            "/v1/flows/appointment-confirmation",
            appointment(lead={"firstName": "J", "email": "j@example.com", "phone": "0612345678"}),
            "lead.phone",
        ),
    ],
)
async def test_flow_rejects_bad_input(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    response = await api.client.post(path, json=body)
    assert response.status_code == 422
    assert field in [error["path"] for error in response.json()["errors"]]
    assert await queued(api) == 0


async def test_flows_need_the_api_key(api: Api) -> None:
    response = await api.anonymous.post("/v1/flows/appointment-confirmation", json=appointment())
    assert response.status_code == 401


async def test_reminders_put_schedules_and_delete_cancels(api: Api) -> None:
    response = await api.client.put("/v1/appointments/apt-7/reminders", json=appointment("apt-7"))
    assert response.status_code == 200, response.text
    reminders = response.json()["reminders"]
    assert {r["kind"] for r in reminders} == {"day", "hour"}
    for reminder in reminders:
        assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, reminder["jobId"]) == "delayed"
        assert datetime.fromisoformat(reminder["runAt"]) > datetime.now(UTC)

    deleted = await api.client.delete("/v1/appointments/apt-7/reminders")
    assert deleted.status_code == 204
    for reminder in reminders:
        assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, reminder["jobId"]) == "unknown"


async def test_reminders_only_lists_those_scheduled(api: Api) -> None:
    # Three hours ahead: the day-before reminder is already past, the hour-before one is not.
    response = await api.client.put("/v1/appointments/apt-8/reminders", json=appointment("apt-8", in_hours=3))
    assert response.status_code == 200
    assert {r["kind"] for r in response.json()["reminders"]} == {"hour"}


async def test_reminders_path_and_body_must_agree(api: Api) -> None:
    response = await api.client.put("/v1/appointments/other/reminders", json=appointment("apt-9"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "appointmentId"
    assert await queued(api) == 0


@pytest.mark.parametrize(("strict", "status"), [(False, 202), (True, 422)])
async def test_development_addresses_follow_email_strict_domains(
    make_api: Any, api_settings: Any, strict: bool, status: int
) -> None:
    api: Api = await make_api(api_settings.model_copy(update={"email_strict_domains": strict}))
    body = {"email": "jane@mailpit.local", "firstName": "Jane", "verificationToken": "1", "locale": "en"}
    response = await api.client.post("/v1/flows/verification-email", json=body)
    assert response.status_code == status
    if strict:
        assert [error["path"] for error in response.json()["errors"]] == ["email"]
    assert await queued(api) == (0 if strict else 1)
