"""The in-app inbox through the API; a real worker writes the rows from the jobs the API enqueues."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from envoi.db.models import Notification
from envoi.worker import Worker
from tests.api.conftest import Api
from tests.helpers import eventually


async def add(api: Api, user_id: str, **row: Any) -> Notification:
    async with api.envoi.db.session() as session:
        notification = Notification(user_id=user_id, title=row.get("title", "T"), message="M", meta={"a": 1})
        session.add(notification)
    return notification


async def test_post_enqueues_and_worker_creates_the_row(
    api: Api, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    await start_worker(api.envoi)
    response = await api.client.post(
        "/v1/users/user-1/notifications",
        json={"title": "Welcome", "message": "Hello there", "metadata": {"link": "/home"}},
        headers={"Idempotency-Key": "welcome-user-1"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["mode"] == "queued"

    async def listed() -> list[dict[str, Any]]:
        page = await api.client.get("/v1/users/user-1/notifications")
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    items = await eventually(listed, message="the notification in the inbox")
    assert items[0]["title"] == "Welcome"
    assert items[0]["userId"] == "user-1"
    assert items[0]["metadata"]["link"] == "/home"
    assert items[0]["readAt"] is None
    assert set(items[0]) == {"id", "userId", "title", "message", "metadata", "status", "readAt", "createdAt"}

    again = await api.client.post(
        "/v1/users/user-1/notifications",
        json={"title": "Welcome", "message": "Hello there"},
        headers={"Idempotency-Key": "welcome-user-1"},
    )
    assert again.status_code == 200
    assert again.json()["jobId"] == response.json()["jobId"]


async def test_list_pages_unread_count_and_read(api: Api) -> None:
    for i in range(3):
        await add(api, "u2", title=f"n{i}")
    await add(api, "someone-else")

    first = (await api.client.get("/v1/users/u2/notifications", params={"limit": 2})).json()
    assert [n["title"] for n in first["items"]] == ["n2", "n1"]
    second = (
        await api.client.get("/v1/users/u2/notifications", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()
    assert [n["title"] for n in second["items"]] == ["n0"]
    assert second["nextCursor"] is None

    assert (await api.client.get("/v1/users/u2/notifications/unread-count")).json() == {"count": 3}
    target = first["items"][0]["id"]
    assert (await api.client.post(f"/v1/users/u2/notifications/{target}/read")).status_code == 204
    assert (await api.client.get("/v1/users/u2/notifications/unread-count")).json() == {"count": 2}
    unread = (await api.client.get("/v1/users/u2/notifications", params={"unread": "true"})).json()
    assert target not in [n["id"] for n in unread["items"]]
    read = (await api.client.get("/v1/users/u2/notifications")).json()["items"][0]
    assert read["status"] == "READ"
    assert read["readAt"] is not None

    assert (await api.client.post("/v1/users/u2/notifications/read-all")).json() == {"count": 2}
    assert (await api.client.get("/v1/users/u2/notifications/unread-count")).json() == {"count": 0}
    assert (await api.client.get("/v1/users/someone-else/notifications/unread-count")).json() == {"count": 1}


async def test_another_users_notification_is_404(api: Api) -> None:
    theirs = await add(api, "owner")
    response = await api.client.post(f"/v1/users/intruder/notifications/{theirs.id}/read")
    assert response.status_code == 404
    assert (await api.client.get("/v1/users/owner/notifications/unread-count")).json() == {"count": 1}


async def test_bad_cursor_and_limit_are_422(api: Api) -> None:
    bad_cursor = await api.client.get("/v1/users/u/notifications", params={"cursor": "???"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["path"] == "cursor"
    assert (await api.client.get("/v1/users/u/notifications", params={"limit": 0})).status_code == 422


async def test_create_validates_body(api: Api) -> None:
    response = await api.client.post("/v1/users/u/notifications", json={"title": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "message"


async def test_inbox_needs_the_api_key(api: Api) -> None:
    assert (await api.anonymous.get("/v1/users/u/notifications")).status_code == 401
