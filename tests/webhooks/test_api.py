"""`/v1/admin/webhook-endpoints`: the secret shown once (creation, rotation) and never again, 422 naming
the field for a bad url or event, 404 for unknown ids, attempts, test events and replays."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from envoi.config import Settings
from envoi.events import EventType
from envoi.worker import Worker
from tests.api.conftest import Api
from tests.fixtures.webhook_receiver import WebhookReceiver
from tests.helpers import eventually
from tests.webhooks.conftest import QUEUES, events_of

BASE = "/v1/admin/webhook-endpoints"
UNKNOWN = "01JUNKNOWN0000000000000000"


async def create(api: Api, receiver: WebhookReceiver, **overrides: Any) -> dict[str, Any]:
    body = {
        "url": receiver.url,
        "events": ["message.sent", "message.failed"],
        "description": "CRM",
        **overrides,
    }
    response = await api.admin.post(BASE, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secrets = [created["secret"]]
    return created


async def test_create_answers_the_secret_once_and_never_again(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    created = await create(api, webhook_receiver)
    assert set(created) == {"id", "secret"}
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) >= 24
    secret_part = created["secret"].removeprefix("whsec_")

    listed = await api.admin.get(BASE)
    shown = await api.admin.get(f"{BASE}/{created['id']}")
    patched = await api.admin.patch(f"{BASE}/{created['id']}", json={"description": "CRM (prod)"})
    for response in (listed, shown, patched):
        assert response.status_code == 200
        assert secret_part not in response.text
        assert "secret" not in response.text.lower()
    [item] = listed.json()["items"]
    assert item == shown.json() | {"description": "CRM", "updatedAt": item["updatedAt"]}
    assert (item["url"], item["events"], item["enabled"], item["disabledReason"]) == (
        webhook_receiver.url,
        ["message.sent", "message.failed"],
        True,
        None,
    )
    assert patched.json()["description"] == "CRM (prod)"


async def test_rotate_secret_answers_a_new_secret(api: Api, webhook_receiver: WebhookReceiver) -> None:
    created = await create(api, webhook_receiver)
    rotated = await api.admin.post(f"{BASE}/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["id"] == created["id"]
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != created["secret"]
    assert (await api.admin.post(f"{BASE}/{UNKNOWN}/rotate-secret")).status_code == 404


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        ({"url": "ftp://example.com/x"}, "url", "https:// URL"),
        ({"url": "https://127.0.0.1/hook"}, "url", "loopback"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url", "cloud metadata"),
        ({"url": "https://localhost/hook"}, "url", "localhost resolves to 127.0.0.1"),
        ({"events": ["message.sent", "message.opened"]}, "events.1", "Input should be"),
        ({"events": []}, "events", "at least 1"),
        ({"description": "x" * 501}, "description", "at most 500"),
        ({"secret": "whsec_mine"}, "secret", "Extra inputs are not permitted"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    make_api: Callable[..., Awaitable[Api]],
    make_webhook_settings: Callable[..., Settings],
    body: dict[str, Any],
    path: str,
    reason: str,
) -> None:
    # Default safety settings: https only, no private addresses.
    api = await make_api(make_webhook_settings(webhook_allow_http=False, webhook_allow_private=False))
    full = {"url": "https://8.8.8.8/hook", "events": ["message.sent"], **body}
    response = await api.admin.post(BASE, json=full)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["in"], error["path"]) == ("body", path)
    assert reason in error["reason"]
    assert (await api.admin.get(BASE)).json()["items"] == []  # nothing was created


async def test_patch_validates_and_changes_what_is_given(api: Api, webhook_receiver: WebhookReceiver) -> None:
    created = await create(api, webhook_receiver)
    url = f"{BASE}/{created['id']}"
    bad = await api.admin.patch(url, json={"url": "http://169.254.169.254/"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "url"
    disabled = await api.admin.patch(url, json={"enabled": False, "events": ["dead_letter.created"]})
    assert disabled.status_code == 200
    assert (disabled.json()["enabled"], disabled.json()["disabledReason"], disabled.json()["events"]) == (
        False,
        "disabled by an operator",
        ["dead_letter.created"],
    )
    enabled = await api.admin.patch(url, json={"enabled": True})
    assert (enabled.json()["enabled"], enabled.json()["disabledReason"]) == (True, None)
    assert (await api.admin.patch(f"{BASE}/{UNKNOWN}", json={"enabled": True})).status_code == 404


async def test_delete_is_204_then_404(api: Api, webhook_receiver: WebhookReceiver) -> None:
    created = await create(api, webhook_receiver)
    assert (await api.admin.delete(f"{BASE}/{created['id']}")).status_code == 204
    assert (await api.admin.delete(f"{BASE}/{created['id']}")).status_code == 404
    assert (await api.admin.get(f"{BASE}/{created['id']}")).status_code == 404


async def test_the_routes_need_the_admin_token(api: Api) -> None:
    assert (await api.anonymous.get(BASE)).status_code == 401
    assert (await api.client.get(BASE)).status_code == 403  # the API key is not the admin token
    response = await api.anonymous.post(BASE, json={"url": "https://8.8.8.8/", "events": ["message.sent"]})
    assert response.status_code == 401


async def test_a_test_event_and_a_replay_arrive_and_are_listed_as_attempts(
    api: Api, start_worker: Callable[..., Awaitable[Worker]], webhook_receiver: WebhookReceiver
) -> None:
    created = await create(api, webhook_receiver, events=["dead_letter.created"])
    url = f"{BASE}/{created['id']}"
    await start_worker(api.envoi, queues=QUEUES)
    queued = await api.admin.post(f"{url}/test")
    assert queued.status_code == 202
    event_id = queued.json()["eventId"]
    [request] = await eventually(lambda: webhook_receiver.requests, message="the test event")
    assert request.verified and request.event_id == event_id
    assert request.json["type"] == "webhook.test"  # sent although the endpoint subscribes to another type

    replayed = await api.admin.post(f"{url}/replay/{event_id}")
    assert replayed.status_code == 202
    assert replayed.json()["jobIds"][0] != queued.json()["jobIds"][0]
    requests = await eventually(lambda: len(webhook_receiver.requests) == 2 and webhook_receiver.requests)
    assert requests[1].event_id == event_id and requests[1].body == requests[0].body

    attempts = await eventually(
        lambda: _two(api.admin.get(f"{url}/attempts", params={"limit": 5})), message="two attempts listed"
    )
    assert [(a["eventId"], a["eventType"], a["statusCode"], a["error"]) for a in attempts] == [
        (event_id, "webhook.test", 200, None)
    ] * 2
    assert all(isinstance(a["durationMs"], int) for a in attempts)
    assert (await api.admin.post(f"{url}/replay/evt_unknown")).status_code == 404
    assert (await api.admin.get(f"{BASE}/{UNKNOWN}/attempts")).status_code == 404
    assert (await api.admin.get(f"{url}/attempts", params={"limit": 0})).status_code == 422


async def _two(response: Awaitable[Any]) -> list[dict[str, Any]] | None:
    items: list[dict[str, Any]] = (await response).json()["items"]
    return items if len(items) == 2 else None


async def test_test_and_replay_refuse_a_disabled_endpoint(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    created = await create(api, webhook_receiver)
    url = f"{BASE}/{created['id']}"
    queued = await api.admin.post(f"{url}/test")
    await api.admin.patch(url, json={"enabled": False})
    refused = await api.admin.post(f"{url}/test")
    assert refused.status_code == 409 and "disabled" in refused.json()["detail"]
    assert (await api.admin.post(f"{url}/replay/{queued.json()['eventId']}")).status_code == 409
    assert (await api.admin.post(f"{BASE}/{UNKNOWN}/test")).status_code == 404
    assert len(await events_of(api.envoi, "webhook.test")) == 1


async def test_every_event_type_is_in_the_openapi_document(api: Api) -> None:
    schema = (await api.anonymous.get("/openapi.json")).json()
    assert set(schema["components"]["schemas"]["EventType"]["enum"]) == {e.value for e in EventType}
    paths = schema["paths"]
    assert {"/v1/admin/webhook-endpoints", "/v1/admin/webhook-endpoints/{id}/replay/{eventId}"} <= set(paths)
