"""Dead letters marked RESOLVED by hand, and what the page is told before retrying bad data."""

from __future__ import annotations

from envoi.dead_letters.service import FailedJobNotResolvableError
from tests.api.conftest import ADMIN_TOKEN, Api, add_failed_job


async def test_resolve_marks_a_failed_dead_letter_and_it_can_no_longer_be_retried(api: Api) -> None:
    row = await add_failed_job(api.envoi)
    resolved = await api.admin.post(f"/v1/admin/failed-jobs/{row}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "RESOLVED"
    again = await api.admin.post(f"/v1/admin/failed-jobs/{row}/resolve")
    assert again.status_code == 200, "resolving twice is harmless"
    assert (await api.admin.post(f"/v1/admin/failed-jobs/{row}/retry")).status_code == 409
    listed = (await api.admin.get("/v1/admin/failed-jobs", params={"status": "RESOLVED"})).json()
    assert [item["id"] for item in listed["items"]] == [row]


async def test_a_retried_dead_letter_is_not_resolved_and_unknown_is_404(api: Api) -> None:
    row = await add_failed_job(api.envoi)
    assert (await api.admin.post(f"/v1/admin/failed-jobs/{row}/retry")).status_code == 202
    refused = await api.admin.post(f"/v1/admin/failed-jobs/{row}/resolve")
    assert refused.status_code == 409
    assert "RETRIED" in refused.json()["detail"]
    try:
        await api.envoi.dead_letters.resolve(row)
    except FailedJobNotResolvableError as exc:
        assert exc.status == "RETRIED"
    else:
        raise AssertionError("a RETRIED row was resolved")
    assert (
        await api.admin.post("/v1/admin/failed-jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/resolve")
    ).status_code == 404


async def test_resolve_is_a_cookie_write_that_needs_csrf(api: Api) -> None:
    row = await add_failed_job(api.envoi)
    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    cookies = {"envoi_admin": login.cookies["envoi_admin"]}
    assert (
        await api.anonymous.post(f"/v1/admin/failed-jobs/{row}/resolve", cookies=cookies)
    ).status_code == 403
    ok = await api.anonymous.post(
        f"/v1/admin/failed-jobs/{row}/resolve", cookies=cookies, headers={"X-Envoi-CSRF": "1"}
    )
    assert ok.status_code == 200


async def test_a_dead_letter_of_invalid_data_says_so_and_names_the_fields(api: Api) -> None:
    bad = await add_failed_job(
        api.envoi,
        job_data={"to": "not-a-number", "message": "hi"},
        error_message="Invalid data for SEND_SMS: to: must be an E.164 phone number such as +33612345678",
    )
    fine = await add_failed_job(api.envoi)
    items = {i["id"]: i for i in (await api.admin.get("/v1/admin/failed-jobs")).json()["items"]}
    assert items[bad]["failedOnInvalidData"] is True
    assert set(items[bad]["dataProblems"]) == {"to"}
    assert items[fine]["failedOnInvalidData"] is False
    assert items[fine]["dataProblems"] is None
    # The warning is right: a retry of that data is refused at the door, and the row stays FAILED.
    retry = await api.admin.post(f"/v1/admin/failed-jobs/{bad}/retry")
    assert retry.status_code == 422
    assert (await api.admin.get(f"/v1/admin/failed-jobs/{bad}")).json()["status"] == "FAILED"
