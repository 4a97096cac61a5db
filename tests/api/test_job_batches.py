"""`POST /v1/jobs/{jobName}/batch`: up to 1,000 jobs in one request, through the real app on real Redis
and both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from envoi.db.models import IdempotencyKey
from envoi.notifications.idempotency import key_hash
from envoi.queue import HandlerRegistry, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from tests.api.conftest import Api
from tests.helpers import bull_queue

SMS = [{"to": "+33612345678", "message": f"Your code is {n:06d}"} for n in range(5)]


async def job_count(api: Api, queue: str = NOTIFICATIONS_QUEUE) -> int:
    counts = await api.envoi.queue.counts(queue) or {}
    return sum(counts.values())


async def stored(api: Api, job_id: str, queue: str = NOTIFICATIONS_QUEUE) -> Any:
    return await bull_queue(api.envoi.queue, queue).getJob(job_id)


async def test_a_batch_is_one_202_with_every_job_id_in_the_order_of_the_items(api: Api) -> None:
    response = await api.client.post("/v1/jobs/SEND_SMS/batch", json={"items": SMS})
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert [job["mode"] for job in jobs] == ["queued"] * len(SMS)
    assert len({job["jobId"] for job in jobs}) == len(SMS)
    for item, job in zip(SMS, jobs, strict=True):
        added = await stored(api, job["jobId"])
        assert added.name == "SEND_SMS"
        assert added.data["message"] == item["message"]
    assert await job_count(api) == len(SMS)


async def test_each_bad_item_is_a_422_naming_its_index_and_nothing_is_enqueued(api: Api) -> None:
    items: list[Any] = [SMS[0], {"to": "nope", "message": "x"}, SMS[1], {"to": "+33612345678"}]
    response = await api.client.post("/v1/jobs/SEND_SMS/batch", json={"items": items})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {(e["in"], e["path"]) for e in errors} == {("body", "items.1.to"), ("body", "items.3.message")}
    assert await job_count(api) == 0


async def test_items_that_are_not_objects_or_too_many_or_none_are_422(api: Api) -> None:
    cases: list[tuple[Any, str]] = [
        ({"items": [SMS[0], "text"]}, "items.1"),
        ({"items": [SMS[0]] * 1001}, "items"),
        ({"items": []}, "items"),
        ({"jobs": SMS}, "jobs"),
        ([SMS[0]], "(root)"),
    ]
    for body, path in cases:
        response = await api.client.post("/v1/jobs/SEND_SMS/batch", json=body)
        assert response.status_code == 422, (body, response.text)
        assert path in {e["path"] for e in response.json()["errors"]}, response.text
    assert await job_count(api) == 0


async def test_hostile_items_are_refused_by_the_rules_of_a_single_job(api: Api) -> None:
    items = [
        {"to": "+33612345678", "message": "nul \x00 here"},
        {"to": "+33612345678", "message": "x", "metadata": {"deep": 2**60}},
        {"to": "+33612345678", "message": "m" * 1601},
    ]
    response = await api.client.post("/v1/jobs/SEND_SMS/batch", json={"items": items})
    assert response.status_code == 422, response.text
    paths = {e["path"] for e in response.json()["errors"]}
    assert paths == {"items.0.message", "items.1.metadata", "items.2.message"}, paths
    assert await job_count(api) == 0


async def test_a_thousand_items_go_in_one_request(api: Api) -> None:
    items = [{"userId": f"u{n}", "title": "Hi", "message": "Hello"} for n in range(1000)]
    response = await api.client.post("/v1/jobs/CREATE_INAPP_NOTIFICATION/batch", json={"items": items})
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert len(jobs) == 1000
    assert (await stored(api, jobs[999]["jobId"])).data["userId"] == "u999"
    assert await job_count(api) == 1000


async def test_the_idempotency_key_covers_the_whole_batch(api: Api) -> None:
    headers = {"Idempotency-Key": "campaign-7"}
    first = await api.client.post("/v1/jobs/SEND_SMS/batch", json={"items": SMS}, headers=headers)
    again = await api.client.post("/v1/jobs/SEND_SMS/batch", json={"items": SMS}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    ids = [job["jobId"] for job in first.json()["jobs"]]
    assert [job["jobId"] for job in again.json()["jobs"]] == ids
    assert await job_count(api) == len(SMS)
    # Each message has its own ledger key, so the ledger does not take the second for a repeat.
    keys = [(await stored(api, job_id)).data["metadata"]["idempotencyKey"] for job_id in ids]
    assert keys == [f"campaign-7#{n}" for n in range(len(SMS))]
    # One row for the batch, apart from the single route's keys (the same key may name one job too).
    async with api.envoi.db.session() as session:
        [row] = (await session.scalars(select(IdempotencyKey))).all()
    assert (row.scope, row.key_hash) == ("SEND_SMS/batch", key_hash("campaign-7"))
    single = await api.client.post("/v1/jobs/SEND_SMS", json=SMS[0], headers=headers)
    assert single.status_code == 202


async def test_a_refused_batch_does_not_burn_its_key(api: Api) -> None:
    headers = {"Idempotency-Key": "campaign-8"}
    bad = await api.client.post(
        "/v1/jobs/SEND_SMS/batch", json={"items": [SMS[0], {"to": "nope", "message": "x"}]}, headers=headers
    )
    assert bad.status_code == 422
    good = await api.client.post("/v1/jobs/SEND_SMS/batch", json={"items": SMS[:2]}, headers=headers)
    assert good.status_code == 202
    assert len(good.json()["jobs"]) == 2


class Invoice(BaseModel):
    number: int


def invoice_registry() -> tuple[HandlerRegistry, list[JobContext]]:
    registry = HandlerRegistry()
    runs: list[JobContext] = []

    async def invoice(data: Invoice, context: JobContext) -> int:
        runs.append(context)
        return data.number

    registry.register("GENERATE_INVOICE", invoice, model=Invoice, queue=WEBHOOKS_QUEUE)
    return registry, runs


async def test_an_application_job_is_batched_on_its_own_queue_and_validated_by_its_model(
    make_api: Callable[..., Any], api_settings: Any
) -> None:
    registry, _ = invoice_registry()
    api: Api = await make_api(api_settings, registry=registry)
    refused = await api.client.post("/v1/jobs/GENERATE_INVOICE/batch", json={"items": [{"number": "x"}]})
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["items.0.number"]
    response = await api.client.post(
        "/v1/jobs/GENERATE_INVOICE/batch", json={"items": [{"number": 1}, {"number": 2}]}
    )
    assert response.status_code == 202, response.text
    [one, two] = response.json()["jobs"]
    assert (await stored(api, one["jobId"], WEBHOOKS_QUEUE)).data == {"number": 1}
    assert (await stored(api, two["jobId"], WEBHOOKS_QUEUE)).data == {"number": 2}
    assert await job_count(api, WEBHOOKS_QUEUE) == 2
    unknown = await api.client.post("/v1/jobs/NO_SUCH_JOB/batch", json={"items": [{}]})
    assert unknown.status_code == 404


async def test_with_the_queue_disabled_each_item_runs_inline_in_order(
    make_api: Callable[..., Any], make_settings: Any
) -> None:
    registry, runs = invoice_registry()
    api: Api = await make_api(make_settings(queue_enabled=False, envoi_api_key=None), registry=registry)
    response = await api.anonymous.post(
        "/v1/jobs/GENERATE_INVOICE/batch", json={"items": [{"number": n} for n in range(3)]}
    )
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert [job["mode"] for job in jobs] == ["sync"] * 3
    assert [run.data["number"] for run in runs] == [0, 1, 2]
    assert [run.job_id for run in runs] == [job["jobId"] for job in jobs]
