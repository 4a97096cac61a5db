"""U+0000 is refused at the door with a 422 naming where it is: PostgreSQL cannot store it, so letting
it through meant a 500 on a filter or a job failing in a worker five retries later."""

from __future__ import annotations

import pytest

from envoi.errors import InvalidJobDataError
from envoi.notifications.jobs import parse_job
from tests.api.conftest import Api

REASON = "must not contain NUL (U+0000) characters"


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/admin/failed-jobs?jobName=SEND%00SMS", "jobName"),
        ("/v1/admin/failed-jobs?queueName=%00", "queueName"),
    ],
)
async def test_nul_in_a_query_parameter_is_a_422(api: Api, path: str, param: str) -> None:
    response = await api.admin.get(path)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"in": "query", "path": param, "reason": REASON}]


async def test_bulk_delete_with_nul_filter_deletes_nothing(api: Api) -> None:
    response = await api.admin.post("/v1/admin/failed-jobs/delete?jobName=a%00")
    assert response.status_code == 422


async def test_nul_in_the_path_is_a_422(api: Api) -> None:
    response = await api.client.get("/v1/users/u%00x/notifications")
    assert response.status_code == 422
    assert response.json()["errors"][0]["in"] == "path"


async def test_nul_in_a_body_field_names_the_field_and_enqueues_nothing(api: Api) -> None:
    response = await api.client.post(
        "/v1/users/u1/notifications", json={"title": "a\u0000b", "message": "hello"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "title"
    assert sum((await api.envoi.queue.counts("notifications") or {}).values()) == 0


async def test_nul_in_a_flow_body_is_a_422(api: Api) -> None:
    response = await api.client.post(
        "/v1/flows/verification-email",
        json={"email": "jane@example.com", "firstName": "Ja\u0000ne", "verificationToken": "t"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "firstName"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"userId": "u1", "title": "a\x00", "message": "m"}, "title"),
        ({"userId": "u1", "title": "t", "message": "m", "metadata": {"templateKey": "k\x00"}}, "metadata"),
        ({"userId": "u1", "title": "t", "message": "m", "metadata": {"leadId": "x\x00"}}, "metadata"),
    ],
)
def test_job_data_from_any_producer_with_nul_fails_without_retries(
    data: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job("CREATE_INAPP_NOTIFICATION", data)
    assert any(path.startswith(field) for path in caught.value.fields), caught.value.fields
