"""The operations console's API on a real Redis, a real worker and the SMTP sink: jobs in every state,
promote, cancel, pause and resume, clean, workers, throughput, search; 404/409/503 where they belong."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.api.conftest import ADMIN_TOKEN, API_KEY, Api
from tests.api.test_flows import appointment
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, job_state, redis_client

JOBS = f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/jobs"


@pytest.fixture
async def mail_api(make_api: Callable[..., Any], make_delivery_settings: Callable[..., Settings]) -> Api:
    """The API with the real notification handlers, sending email to the SMTP sink."""
    settings = make_delivery_settings(envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN)
    result: Api = await make_api(settings)
    return result


async def delayed(api: Api) -> list[dict[str, Any]]:
    page = (await api.admin.get(JOBS, params={"state": "delayed"})).json()
    return list(page["items"])


async def test_scheduled_reminders_are_listed_with_their_run_at_then_promoted_or_cancelled(
    mail_api: Api, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    api = mail_api
    scheduled = await api.client.put(
        "/v1/appointments/apt-c1/reminders", json=appointment("apt-c1", in_hours=72)
    )
    reminders = {r["jobId"]: r for r in scheduled.json()["reminders"] if r["channel"] == "email"}
    by_kind = {r["kind"]: job_id for job_id, r in reminders.items()}
    day, hour = by_kind["day"], by_kind["hour"]
    assert day.startswith("reminder-apt-c1-day-") and hour.startswith("reminder-apt-c1-hour-")

    listed = {item["id"]: item for item in await delayed(api)}
    for job_id, reminder in reminders.items():
        assert listed[job_id]["state"] == "delayed"
        assert listed[job_id]["name"] == "SEND_EMAIL"
        run_at = datetime.fromisoformat(listed[job_id]["runAt"])
        assert abs((run_at - datetime.fromisoformat(reminder["runAt"])).total_seconds()) < 2
        assert listed[job_id]["data"]["to"] == "j***@example.com"  # masked
    assert "jane@example.com" not in str(listed)

    await start_worker(api.envoi)
    promoted = await api.admin.post(f"{JOBS}/{day}/promote")
    assert promoted.status_code == 200, promoted.text
    await eventually(lambda: smtp_sink.messages, timeout=15, message="the promoted reminder at the sink")
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["jane@example.com"]

    cancelled = await api.admin.delete(f"{JOBS}/{hour}")
    assert cancelled.status_code == 204
    assert await job_state(api.envoi, NOTIFICATIONS_QUEUE, hour) == "unknown"
    assert (await api.admin.get(f"{JOBS}/{hour}")).status_code == 404
    assert (await api.admin.delete(f"{JOBS}/{hour}")).status_code == 404
    assert not {item["id"] for item in await delayed(api)} & set(reminders)


async def test_pause_holds_new_jobs_until_resume(
    mail_api: Api, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    api = mail_api
    await start_worker(api.envoi)
    paused = await api.admin.post(f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/pause")
    assert paused.json() == {"name": NOTIFICATIONS_QUEUE, "paused": True}
    overview = (await api.admin.get("/v1/admin/queues")).json()
    assert next(q for q in overview["queues"] if q["name"] == NOTIFICATIONS_QUEUE)["paused"] is True

    accepted = await api.client.post(
        "/v1/jobs/SEND_EMAIL", json={"to": "held@example.com", "subject": "Held", "html": "<p>held</p>"}
    )
    job_id = accepted.json()["jobId"]
    added = datetime.now(UTC)

    async def worker_polled_since_the_add() -> bool:
        workers = (await api.admin.get("/v1/admin/workers")).json()["workers"]
        return any(datetime.fromisoformat(w["lastSeenAt"]) > added for w in workers)

    # The worker asked Redis for work after the job arrived, and still did not take it.
    await eventually(worker_polled_since_the_add, timeout=10, message="a worker poll after the add")
    waiting = (await api.admin.get(JOBS, params={"state": "waiting"})).json()["items"]
    assert [item["id"] for item in waiting] == [job_id]
    assert smtp_sink.messages == []

    resumed = await api.admin.post(f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/resume")
    assert resumed.json()["paused"] is False
    await eventually(lambda: smtp_sink.messages, timeout=15, message="the held email delivered")
    assert smtp_sink.messages[0].message["Subject"] == "Held"


def blocking_registry(release: asyncio.Event) -> HandlerRegistry:
    registry = HandlerRegistry()

    async def hold(_data: Any, _context: JobContext) -> str:
        await release.wait()
        return "done"

    async def fail(_data: Any, _context: JobContext) -> None:
        raise RuntimeError("boom for dave@example.com")

    registry.register("HOLD", hold)
    registry.register("FAIL", fail)
    return registry


@pytest.fixture
async def held_api(make_api: Callable[..., Any], api_settings: Settings) -> tuple[Api, asyncio.Event]:
    release = asyncio.Event()
    api: Api = await make_api(api_settings, registry=blocking_registry(release))
    return api, release


async def test_wrong_state_is_409_and_unknown_is_404(
    held_api: tuple[Api, asyncio.Event], start_worker: Any
) -> None:
    api, release = held_api
    queue = api.envoi.queue
    await queue.enqueue(NOTIFICATIONS_QUEUE, "HOLD", {}, job_id="held-1")
    await queue.enqueue(NOTIFICATIONS_QUEUE, "HOLD", {}, job_id="later-1", delay=3600)
    promote_waiting = await api.admin.post(f"{JOBS}/held-1/promote")
    assert promote_waiting.status_code == 409
    assert "waiting" in promote_waiting.json()["detail"]

    await start_worker(api.envoi, concurrency=1)
    await eventually(lambda: _state_is(api, "held-1", "active"), message="held-1 active")
    active = (await api.admin.get(JOBS, params={"state": "active"})).json()["items"]
    assert [item["id"] for item in active] == ["held-1"]
    cancel_active = await api.admin.delete(f"{JOBS}/held-1")
    assert cancel_active.status_code == 409
    assert "active" in cancel_active.json()["detail"]

    assert (await api.admin.get("/v1/admin/queues/nope/jobs")).status_code == 404
    assert (await api.admin.post("/v1/admin/queues/nope/pause")).status_code == 404
    assert (await api.admin.get(f"{JOBS}/no-such-job")).status_code == 404
    assert (await api.admin.post(f"{JOBS}/no-such-job/promote")).status_code == 404
    bad_state = await api.admin.get(JOBS, params={"state": "sleeping"})
    assert bad_state.status_code == 422
    assert bad_state.json()["errors"][0]["path"] == "state"

    detail = (await api.admin.get(f"{JOBS}/later-1")).json()
    assert detail["state"] == "delayed" and detail["runAt"] is not None
    assert detail["options"]["attempts"] == 5
    release.set()
    await eventually(lambda: _state_is(api, "held-1", "unknown"), message="held-1 completed and removed")


async def _state_is(api: Api, job_id: str, state: str) -> bool:
    return await job_state(api.envoi, NOTIFICATIONS_QUEUE, job_id) == state


async def test_pages_follow_the_cursor(api: Api) -> None:
    for n in range(5):
        await api.envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": n}, job_id=f"p-{n}", delay=60 + n)
    first = (await api.admin.get(JOBS, params={"state": "delayed", "limit": 2})).json()
    assert [i["id"] for i in first["items"]] == ["p-0", "p-1"]  # the next due first
    second = (
        await api.admin.get(JOBS, params={"state": "delayed", "limit": 2, "cursor": first["nextCursor"]})
    ).json()
    assert [i["id"] for i in second["items"]] == ["p-2", "p-3"]
    last = (
        await api.admin.get(JOBS, params={"state": "delayed", "limit": 2, "cursor": second["nextCursor"]})
    ).json()
    assert [i["id"] for i in last["items"]] == ["p-4"]
    assert last["nextCursor"] is None
    assert (await api.admin.get(JOBS, params={"cursor": "-1"})).status_code == 422


async def test_clean_failed_keeps_failures_without_a_dead_letter(
    held_api: tuple[Api, asyncio.Event], start_worker: Any
) -> None:
    api, _ = held_api
    for n in range(3):
        await api.envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "FAIL", {}, job_id=f"f-{n}", attempts=1)
    worker = await start_worker(api.envoi)

    async def recorded() -> bool:
        page = (await api.admin.get("/v1/admin/failed-jobs")).json()
        return len(page["items"]) == 3

    await eventually(recorded, timeout=15, message="three dead letters")
    # Its reconciler (every second here) would mark f-2 seen again between the lines below and the clean.
    await worker.close(timeout=5)
    failed = (await api.admin.get(JOBS, params={"state": "failed"})).json()["items"]
    assert {i["id"] for i in failed} == {"f-0", "f-1", "f-2"}
    assert "dave@example.com" not in str(failed)  # the error text is masked too
    # As if f-2's row had never been written: no seen mark, and no reconciler pass since.
    client = redis_client(api.envoi.queue)
    seen_key = api.envoi.queue._redis.keys.dlq_seen(NOTIFICATIONS_QUEUE)  # type: ignore[union-attr]
    for member in await client.zrange(seen_key, 0, -1):
        if member.endswith(":f-2"):
            await client.zrem(seen_key, member)
    await client.delete(api.envoi.queue._redis.keys.dlq_watermark(NOTIFICATIONS_QUEUE))  # type: ignore[union-attr]

    cleaned = await api.admin.post(
        f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/clean", params={"state": "failed", "olderThan": "0"}
    )
    assert cleaned.json() == {"removed": 2, "kept": 1}
    left = (await api.admin.get(JOBS, params={"state": "failed"})).json()["items"]
    assert [i["id"] for i in left] == ["f-2"]
    # Dead letters are envoi's table: cleaning bullmq's failed set leaves them alone.
    assert len((await api.admin.get("/v1/admin/failed-jobs")).json()["items"]) == 3

    young = await api.admin.post(
        f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/clean", params={"state": "completed", "olderThan": "1h"}
    )
    assert young.json() == {"removed": 0, "kept": 0}
    bad = await api.admin.post(
        f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/clean", params={"state": "failed", "olderThan": "soon"}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"in": "query", "path": "olderThan", "reason": bad.json()["errors"][0]["reason"]}
    ]


async def test_workers_and_throughput_come_from_bullmq(
    held_api: tuple[Api, asyncio.Event], start_worker: Any
) -> None:
    api, release = held_api
    release.set()
    await start_worker(api.envoi, concurrency=3)
    [worker] = [
        w
        for w in (await api.admin.get("/v1/admin/workers")).json()["workers"]
        if w["queue"] == NOTIFICATIONS_QUEUE
    ]
    assert worker["pid"] == os.getpid()
    assert worker["concurrency"] == 3
    assert worker["host"] == socket.gethostname()
    assert worker["connections"] >= 1  # bullmq's pooled client: its blocking wait, its other commands
    assert datetime.fromisoformat(worker["startedAt"]) <= datetime.now(UTC)

    for n in range(4):
        await api.envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "HOLD", {}, job_id=f"ok-{n}")
    await api.envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "FAIL", {}, job_id="bad-1", attempts=1)

    async def counted() -> dict[str, Any] | None:
        body = (await api.admin.get("/v1/admin/throughput", params={"minutes": 5})).json()
        done = sum(m["completed"] for m in body["minutes"])
        failed = sum(m["failed"] for m in body["minutes"])
        return body if (done, failed) == (4, 1) else None

    body = await eventually(counted, timeout=15, message="4 completed and 1 failed counted")
    assert len(body["minutes"]) == 5
    assert body["countingMinutes"] == 24 * 60


async def test_search_finds_scheduled_and_failed_jobs_by_recipient_and_any_job_by_id(
    held_api: tuple[Api, asyncio.Event], start_worker: Any
) -> None:
    api, _ = held_api
    queue = api.envoi.queue
    phone, other = "+33612345678", "+33698765432"
    await queue.enqueue(NOTIFICATIONS_QUEUE, "HOLD", {"to": phone}, job_id="later-a", delay=3600)
    await queue.enqueue(
        NOTIFICATIONS_QUEUE, "HOLD", {"to": f"whatsapp:{phone}"}, job_id="later-b", delay=7200
    )
    await queue.enqueue(NOTIFICATIONS_QUEUE, "HOLD", {"to": other}, job_id="later-c", delay=3600)
    await queue.enqueue(
        NOTIFICATIONS_QUEUE, "HOLD", {"to": "Jane.Doe@Example.com"}, job_id="later-d", delay=60
    )
    await queue.enqueue(
        NOTIFICATIONS_QUEUE, "HOLD", {"to": phone}, job_id="now-1"
    )  # runs at once: not indexed
    await queue.enqueue(NOTIFICATIONS_QUEUE, "FAIL", {"to": phone}, job_id="bad-1", attempts=1)
    await start_worker(api.envoi)
    await eventually(
        lambda: api.envoi.dead_letters.for_jobs([(NOTIFICATIONS_QUEUE, "bad-1")]), message="dead letter"
    )

    async def hits(q: str) -> list[dict[str, Any]]:
        return list((await api.admin.get("/v1/admin/search", params={"q": q})).json()["items"])

    # The failure is indexed when its dead letter is recorded, just after bullmq marks it failed.
    by_phone = await eventually(lambda: _with(hits("+33 6 12 34 56 78"), "bad-1"), message="bad-1 indexed")
    assert [hit["jobId"] for hit in by_phone] == ["bad-1", "later-b", "later-a"]  # newest first
    assert {hit["matchedBy"] for hit in by_phone} == {"recipient"}
    assert by_phone[1]["state"] == "delayed"
    assert by_phone[1]["job"]["data"]["to"].endswith("78") and phone not in str(by_phone)
    bad = by_phone[0]
    assert bad["state"] == "failed" and [d["status"] for d in bad["deadLetters"]] == ["FAILED"]

    by_email = await hits("jane.doe@example.com")
    assert [hit["jobId"] for hit in by_email] == ["later-d"]
    by_id = await hits("later-c")
    assert [(hit["jobId"], hit["matchedBy"]) for hit in by_id] == [("later-c", "jobId")]

    # Redis holds a hash of the recipient, never the number itself.
    keys = [k async for k in redis_client(queue).scan_iter(match="envoi:*:recipients:*")]
    assert keys and not any("612345678" in k for k in keys)

    assert await hits("nobody@example.com") == []
    assert (await api.admin.get("/v1/admin/search", params={"q": ""})).status_code == 422


async def _with(found: Any, job_id: str) -> Any:
    items = await found
    return items if any(hit["jobId"] == job_id for hit in items) else None


async def test_console_routes_answer_503_when_redis_is_down(
    make_api: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    api: Api = await make_api(
        make_settings(redis_url=dead, envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN)
    )
    for method, path in (
        ("GET", JOBS),
        ("GET", f"{JOBS}/x"),
        ("POST", f"{JOBS}/x/promote"),
        ("DELETE", f"{JOBS}/x"),
        ("POST", f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/pause"),
        ("GET", "/v1/admin/workers"),
        ("GET", "/v1/admin/throughput"),
        ("GET", "/v1/admin/search?q=x"),
    ):
        response = await api.admin.request(method, path)
        assert response.status_code == 503, (method, path, response.text)
        assert "Redis" in response.json()["detail"]
    overview = (await api.admin.get("/v1/admin/queues")).json()
    assert overview["queues"][0]["paused"] is None


async def test_console_routes_need_the_admin_token_and_csrf(api: Api) -> None:
    assert (await api.anonymous.get(JOBS)).status_code == 401
    assert (await api.client.get("/v1/admin/workers")).status_code == 403
    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    cookies = {"envoi_admin": login.cookies["envoi_admin"]}
    no_header = await api.anonymous.post(f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/pause", cookies=cookies)
    assert no_header.status_code == 403
    assert not await api.envoi.queue.inspector.paused(NOTIFICATIONS_QUEUE)
    with_header = await api.anonymous.post(
        f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/pause", cookies=cookies, headers={"X-Envoi-CSRF": "1"}
    )
    assert with_header.status_code == 200


@pytest.mark.parametrize(
    "job_id", ["../../etc/passwd", "a" * 255, "é🙂", "x y", "bull:notifications:1", "*", "%25"]
)
async def test_hostile_job_ids_are_404_never_500(api: Api, job_id: str) -> None:
    for method, suffix in (("GET", ""), ("POST", "/promote"), ("DELETE", "")):
        response = await api.admin.request(method, f"{JOBS}/{job_id}{suffix}")
        assert response.status_code == 404, (method, job_id, response.text)
    assert (await api.admin.get(f"{JOBS}/{'a' * 256}")).status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"state": "failed", "olderThan": "-5"},
        {"state": "failed", "olderThan": "1e9"},
        {"state": "failed", "olderThan": "99999999999999999999"},
        {"state": "waiting", "olderThan": "1h"},
        {"state": "failed"},
        {"state": "failed", "olderThan": "1h", "limit": "0"},
    ],
)
async def test_bad_clean_parameters_are_422_naming_the_field(api: Api, params: dict[str, str]) -> None:
    response = await api.admin.post(f"/v1/admin/queues/{NOTIFICATIONS_QUEUE}/clean", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] in ("olderThan", "state", "limit")


@pytest.mark.parametrize("q", ["'; DROP TABLE failed_jobs; --", "@", "+", "é" * 300, "a@b@c", "whatsapp:"])
async def test_hostile_searches_answer_without_error(api: Api, q: str) -> None:
    response = await api.admin.get("/v1/admin/search", params={"q": q})
    assert response.status_code == 200, response.text
    assert response.json() == {"items": []}


async def test_a_message_not_sent_because_its_channel_is_off_is_listed_with_why(
    make_api: Callable[..., Any],
    make_delivery_settings: Callable[..., Settings],
    start_worker: Any,
    smtp_sink: SmtpSink,
) -> None:
    settings = make_delivery_settings(envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN, sms_enabled=False)
    api: Api = await make_api(settings)
    await start_worker(api.envoi)
    sms = {"to": "+33612345678", "message": "Hi"}
    # Kept once completed (the default removes it), so the jobs tab shows its mark too.
    await api.envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "SEND_SMS", sms, job_id="off-1", removeOnComplete=False
    )
    email = {"to": "jane@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    await api.envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "SEND_EMAIL", email, job_id="sent-1", removeOnComplete=False
    )

    async def listed() -> list[dict[str, Any]]:
        return list((await api.admin.get("/v1/admin/deliveries")).json()["items"])

    [row] = await eventually(listed, timeout=15, message="the SMS listed as not sent")
    assert (row["channel"], row["status"], row["errorCode"]) == ("sms", "CANCELLED", "CHANNEL_DISABLED")
    assert row["errorMessage"] == "SMS_ENABLED=false"
    assert row["recipient"] != "+33612345678" and row["recipient"].endswith("78")

    async def completed() -> dict[str, Any] | None:
        page = (await api.admin.get(JOBS, params={"state": "completed"})).json()
        items = {item["id"]: item for item in page["items"]}
        return items if {"off-1", "sent-1"} <= set(items) else None

    items = await eventually(completed, timeout=15, message="both jobs completed")
    assert items["off-1"]["notSent"] == "channel off (sms_enabled=false)"
    assert items["sent-1"]["notSent"] is None
    assert len(smtp_sink.messages) == 1
    sent = (await api.admin.get("/v1/admin/deliveries", params={"status": "SENT"})).json()["items"]
    assert [d["channel"] for d in sent] == ["email"]


@pytest.mark.parametrize("params", [{"status": "LOST"}, {"limit": "0"}, {"limit": "x"}])
async def test_bad_delivery_filters_are_422_naming_the_field(api: Api, params: dict[str, str]) -> None:
    answer = await api.admin.get("/v1/admin/deliveries", params=params)
    assert answer.status_code == 422
    assert next(iter(params)) in answer.text
