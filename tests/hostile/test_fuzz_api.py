"""Property-based, over every API body model (flows, raw jobs, inbox, appointments, admin filters): random
Unicode with lone surrogates, NUL and line breaks, numbers JSON cannot carry, nesting past every limit.
The API never answers 5xx, always answers JSON it can encode, and what it accepted stays readable.

Bounded (MAX_EXAMPLES per route) so the file runs in seconds on each database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from tests.api.conftest import Api
from tests.helpers import eventually, job_state
from tests.hostile import strategies as hostile

MAX_EXAMPLES = 25
FUZZ = settings(
    max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

APPOINTMENT: dict[str, Any] = {
    "appointmentId": "apt-1",
    "scheduledAt": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
    "durationMinutes": 30,
    "visioUrl": "https://meet.example.com/abc",
    "timezone": "Europe/Paris",
    "locale": "en",
    "lead": {"firstName": "Jane", "email": "jane@example.com", "phone": "+33612345678"},
    "closer": {"firstName": "Paul", "lastName": "Martin", "email": "paul@example.com"},
}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/flows/verification-email": {
        "email": "j@example.com",
        "firstName": "J",
        "verificationToken": "t",
        "locale": "en",
    },
    "/v1/flows/invitation-email": {
        "email": "j@example.com",
        "organizationName": "Acme",
        "inviterName": "Paul",
        "invitationToken": "t",
        "role": "admin",
        "locale": "fr",
    },
    "/v1/flows/abandon-recovery": {
        "email": "j@example.com",
        "firstName": "J",
        "resumeUrl": "https://x.example/r",
    },
    "/v1/jobs/SEND_EMAIL": {
        "to": "j@example.com",
        "subject": "Hi",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "attachments": [{"filename": "a.txt", "contentType": "text/plain", "content": "aGk="}],
        "metadata": {"templateKey": "k", "leadId": "l"},
    },
    "/v1/jobs/SEND_SMS": {"to": "+33612345678", "message": "Hi", "metadata": {"n": 1}},
    "/v1/jobs/SEND_WHATSAPP": {"to": "whatsapp:+33612345678", "message": "Hi"},
    "/v1/jobs/CREATE_INAPP_NOTIFICATION": {
        "userId": "u1",
        "title": "t",
        "message": "m",
        "metadata": {"a": [1]},
    },
    "/v1/users/u1/notifications": {"title": "t", "message": "m", "metadata": {"link": "/x"}},
}


def encoded(value: Any) -> bytes:
    """As a JavaScript client would send it (`\\ud800` escapes); NaN and Infinity as Python writes them."""
    return json.dumps(value).encode("ascii")


def segment(value: Any) -> str:
    """A path or query value, percent-encoded byte for byte (a lone surrogate as invalid UTF-8)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code != 204:
        response.json()


async def _send(api: Api, method: str, path: str, body: Any) -> httpx.Response:
    client = api.admin if path.startswith("/v1/admin") else api.client
    content = body if isinstance(body, bytes) else encoded(body)
    return await client.request(method, path, content=content, headers={"content-type": "application/json"})


@FUZZ
@given(data=st.data())
async def test_no_body_model_answers_5xx(api: Api, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(BODIES)))
    body = data.draw(hostile.body(BODIES[path]))
    check(await _send(api, "POST", path, body))


@FUZZ
@given(
    body=hostile.body(APPOINTMENT),
    nested_person=st.sampled_from(["lead", "closer"]),
    person=hostile.body(APPOINTMENT["lead"]),
)
async def test_no_appointment_answers_5xx(
    api: Api, body: dict[str, Any], nested_person: str, person: dict[str, Any]
) -> None:
    check(await _send(api, "POST", "/v1/flows/appointment-confirmation", {**body, nested_person: person}))
    appointment_id = body.get("appointmentId")
    path = f"/v1/appointments/{segment(appointment_id) or 'x'}/reminders"
    check(await _send(api, "PUT", path, body))
    check(await api.client.delete(path))


@FUZZ
@given(user=st.one_of(st.just("u1"), hostile.spiked, hostile.text), body=hostile.anything)
async def test_no_raw_body_or_user_id_answers_5xx(api: Api, user: str, body: Any) -> None:
    path = f"/v1/users/{segment(user) or 'u'}/notifications"
    check(await _send(api, "POST", path, body))
    check(await api.client.get(path))
    for name in JobName:
        check(await _send(api, "POST", f"/v1/jobs/{name.value}", body))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["queueName", "jobName", "status", "limit", "cursor", "unread"]),
        st.one_of(hostile.text, hostile.spiked, hostile.numbers),
        max_size=4,
    )
)
async def test_no_admin_filter_answers_5xx(api: Api, params: dict[str, Any]) -> None:
    query = "&".join(f"{segment(k)}={segment(v)}" for k, v in params.items())
    for method, path in (
        ("GET", "/v1/admin/failed-jobs"),
        ("POST", "/v1/admin/failed-jobs/retry"),
        ("POST", "/v1/admin/failed-jobs/delete"),
        ("GET", "/v1/users/u1/notifications"),
    ):
        client = api.admin if path.startswith("/v1/admin") else api.client
        check(await client.request(method, f"{path}?{query}"))


@FUZZ
@given(metadata=st.one_of(hostile.json_values, hostile.deep))
async def test_what_the_inbox_accepts_it_can_read_back(api: Api, metadata: Any, start_worker: Any) -> None:
    if not getattr(api, "worker_started", False):
        await start_worker(api.envoi)
        api.worker_started = True  # type: ignore[attr-defined]
    body = {"title": "t", "message": "m", "metadata": metadata}
    response = await _send(api, "POST", "/v1/users/u-read/notifications", body)
    check(response)
    if response.status_code == 202:
        job_id = response.json()["jobId"]

        async def processed() -> bool:
            return await job_state(api.envoi, NOTIFICATIONS_QUEUE, job_id) in (
                "completed",
                "failed",
                "unknown",
            )

        await eventually(processed, message="the worker processed the accepted job")
    listed = await api.client.get("/v1/users/u-read/notifications", params={"limit": 100})
    assert listed.status_code == 200, listed.text[:500]
    failed = await api.admin.get("/v1/admin/failed-jobs", params={"limit": 100})
    assert failed.status_code == 200, failed.text[:500]
