"""The admin API: queue counts, dead letters (masked), retry and delete, one or by filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoi.config import Settings
from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api.conftest import API_KEY, Api, add_failed_job
from tests.dead_letters.support import Jobs
from tests.helpers import job_state


async def test_admin_needs_the_admin_token(api: Api) -> None:
    assert (await api.anonymous.get("/v1/admin/queues")).status_code == 401
    wrong = await api.anonymous.get("/v1/admin/queues", headers={"Authorization": f"Bearer {API_KEY}"})
    assert wrong.status_code == 403
    # The API key is not the admin token, and the admin token is not the API key.
    assert (await api.client.get("/v1/admin/failed-jobs")).status_code == 403
    assert (await api.admin.post("/v1/jobs/SEND_SMS", json={})).status_code == 403


async def test_queues_counts_and_fallback_flag(api: Api) -> None:
    await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "hi"})
    body = (await api.admin.get("/v1/admin/queues")).json()
    assert body["queueEnabled"] is True
    assert body["fallbackActive"] is False
    notifications = next(q for q in body["queues"] if q["name"] == NOTIFICATIONS_QUEUE)
    assert notifications["counts"]["waiting"] == 1


async def test_failed_jobs_list_is_masked_and_filtered(api: Api) -> None:
    sms = await add_failed_job(api.envoi)
    email = await add_failed_job(
        api.envoi, job_name="SEND_EMAIL", job_data={"to": "jane@example.com", "subject": "s", "html": "h"}
    )
    page = (await api.admin.get("/v1/admin/failed-jobs")).json()
    assert [item["id"] for item in page["items"]] == [email, sms]
    assert page["nextCursor"] is None
    item = page["items"][1]
    assert item["jobData"]["to"] == "+33 6** ** ** 78"
    assert "612345678" not in str(page)
    assert "jane@example.com" not in str(page)
    assert set(item) >= {
        "id", "queueName", "jobName", "jobId", "jobData", "jobOptions", "errorMessage", "stacktrace",
        "attemptsMade", "status", "retriedJobId", "createdAt", "updatedAt",
    }  # fmt: skip

    only_email = (await api.admin.get("/v1/admin/failed-jobs", params={"jobName": "SEND_EMAIL"})).json()
    assert [i["id"] for i in only_email["items"]] == [email]
    first = (await api.admin.get("/v1/admin/failed-jobs", params={"limit": 1})).json()
    assert first["nextCursor"] == email
    rest = (
        await api.admin.get("/v1/admin/failed-jobs", params={"limit": 1, "cursor": first["nextCursor"]})
    ).json()
    assert [i["id"] for i in rest["items"]] == [sms]

    one = await api.admin.get(f"/v1/admin/failed-jobs/{sms}")
    assert one.status_code == 200
    assert one.json()["errorMessage"].startswith("Twilio said 21211")
    assert (await api.admin.get("/v1/admin/failed-jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")).status_code == 404


async def test_bad_filters_are_422(api: Api) -> None:
    assert (await api.admin.get("/v1/admin/failed-jobs", params={"status": "LOST"})).status_code == 422
    assert (await api.admin.get("/v1/admin/failed-jobs", params={"cursor": "x"})).status_code == 422
    assert (await api.admin.get("/v1/admin/failed-jobs", params={"limit": 10_000})).status_code == 422


async def test_retry_one_enqueues_again_and_second_retry_is_409(api: Api) -> None:
    failed = await add_failed_job(api.envoi)
    response = await api.admin.post(f"/v1/admin/failed-jobs/{failed}/retry")
    assert response.status_code == 202
    assert response.json()["mode"] == "queued"
    job_id = response.json()["jobId"]
    assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, job_id) == "waiting"
    row = (await api.admin.get(f"/v1/admin/failed-jobs/{failed}")).json()
    assert row["status"] == "RETRIED"
    assert row["retriedJobId"] == job_id
    assert (await api.admin.post(f"/v1/admin/failed-jobs/{failed}/retry")).status_code == 409
    missing = await api.admin.post("/v1/admin/failed-jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry")
    assert missing.status_code == 404


async def test_delete_one(api: Api) -> None:
    failed = await add_failed_job(api.envoi)
    assert (await api.admin.delete(f"/v1/admin/failed-jobs/{failed}")).status_code == 204
    assert (await api.admin.get(f"/v1/admin/failed-jobs/{failed}")).status_code == 404
    assert (await api.admin.delete(f"/v1/admin/failed-jobs/{failed}")).status_code == 404


async def test_retry_and_delete_by_filter(api: Api) -> None:
    for _ in range(3):
        await add_failed_job(api.envoi)
    await add_failed_job(api.envoi, job_name="SEND_EMAIL", job_data={"to": "a@example.com"})
    retried = await api.admin.post("/v1/admin/failed-jobs/retry", params={"jobName": "SEND_SMS"})
    assert retried.json() == {"count": 3}
    counts = (await api.admin.get("/v1/admin/queues")).json()["queues"][0]["counts"]
    assert counts["waiting"] == 3
    deleted = await api.admin.post("/v1/admin/failed-jobs/delete", params={"status": "RETRIED"})
    assert deleted.json() == {"count": 3}
    remaining = (await api.admin.get("/v1/admin/failed-jobs")).json()["items"]
    assert [i["jobName"] for i in remaining] == ["SEND_EMAIL"]


async def test_failure_histogram_counts_the_last_day(api: Api) -> None:
    await add_failed_job(api.envoi)
    await add_failed_job(api.envoi)
    hours = (await api.admin.get("/v1/admin/failure-histogram")).json()["hours"]
    assert len(hours) == 24
    assert hours[-1]["count"] == 2
    assert sum(h["count"] for h in hours) == 2


async def test_cookie_session_needs_csrf_header_for_unsafe_methods(api: Api) -> None:
    login = await api.anonymous.post("/admin/login", data={"token": "test-admin-token-0123456789"})
    assert login.status_code == 303
    cookie = login.cookies.get("envoi_admin")
    assert cookie and cookie != "test-admin-token-0123456789"
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie

    jar = {"envoi_admin": cookie}
    assert (await api.anonymous.get("/v1/admin/queues", cookies=jar)).status_code == 200
    failed = await add_failed_job(api.envoi)
    no_header = await api.anonymous.delete(f"/v1/admin/failed-jobs/{failed}", cookies=jar)
    assert no_header.status_code == 403
    cross_origin = await api.anonymous.delete(
        f"/v1/admin/failed-jobs/{failed}",
        cookies=jar,
        headers={"X-Envoi-CSRF": "1", "Origin": "https://evil.example"},
    )
    assert cross_origin.status_code == 403
    ok = await api.anonymous.delete(
        f"/v1/admin/failed-jobs/{failed}", cookies=jar, headers={"X-Envoi-CSRF": "1"}
    )
    assert ok.status_code == 204
    forged = await api.anonymous.get("/v1/admin/queues", cookies={"envoi_admin": "forged"})
    assert forged.status_code == 403


async def test_error_text_and_stack_traces_quoting_recipients_are_masked(api: Api) -> None:
    failed = await add_failed_job(
        api.envoi,
        error_message="21211: The 'To' number +33612345678 is not valid; copy to <jane@example.com> refused",
        stacktrace=[
            "Traceback (most recent call last):\n  ...\nPermanentDeliveryError: 550 <jane@example.com>",
            "TwilioError: whatsapp:+33612345678 is not a WhatsApp user (33612345678)",
        ],
    )
    listed = (await api.admin.get("/v1/admin/failed-jobs")).json()["items"]
    shown = (await api.admin.get(f"/v1/admin/failed-jobs/{failed}")).json()
    for body in (listed[0], shown):
        text = body["errorMessage"] + "".join(body["stacktrace"])
        assert "jane@example.com" not in text and "612345678" not in text
        assert "j***@example.com" in text and "+33 6** ** ** 78" in text
        assert body["errorMessage"].startswith("21211: The 'To' number +33 6")


async def test_retry_without_a_queue_answers_200_delivered_or_502_failed_again(
    make_api: Callable[..., Any], api_settings: Settings
) -> None:
    """QUEUE_ENABLED=false, no worker: the retry runs the handler now and the answer says how it went."""
    jobs = Jobs()
    api: Api = await make_api(
        api_settings.model_copy(update={"queue_enabled": False}), registry=jobs.registry
    )
    failing = await add_failed_job(api.envoi, job_name="ALWAYS_FAIL", job_data={"to": "jane@example.com"})
    switch = await add_failed_job(api.envoi, job_name="SWITCH", job_data={"to": "paul@example.com"})

    failed = await api.admin.post(f"/v1/admin/failed-jobs/{failing}/retry")
    assert failed.status_code == 502, failed.text
    body = failed.json()
    assert body["jobId"] == f"dlq-retry-{failing}" and "failed again" in body["detail"]
    new = body["newFailedJobId"]
    assert new not in (None, failing, switch) and new in body["detail"]
    row = (await api.admin.get(f"/v1/admin/failed-jobs/{new}")).json()
    assert (row["jobName"], row["status"], row["errorMessage"]) == ("ALWAYS_FAIL", "FAILED", "boom 1")
    assert (await api.admin.get(f"/v1/admin/failed-jobs/{failing}")).json()["status"] == "RETRIED"
    assert [c.mode for c in jobs.named("ALWAYS_FAIL")] == ["sync"]

    jobs.broken = False
    delivered = await api.admin.post(f"/v1/admin/failed-jobs/{switch}/retry")
    assert delivered.status_code == 200, delivered.text
    assert delivered.json() == {"jobId": f"dlq-retry-{switch}", "mode": "sync"}
    assert [c.job_id for c in jobs.named("SWITCH")] == [f"dlq-retry-{switch}"]
    assert (await api.admin.post(f"/v1/admin/failed-jobs/{switch}/retry")).status_code == 409
