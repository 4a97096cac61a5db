"""An application's own jobs (`@job`, loaded through ENVOI_JOBS) on envoi's queue: a real worker runs them
with envoi's retries, dead letters, metrics and fallback; their model is enforced at `enqueue()` and by
`POST /v1/jobs/{jobName}`; the error they raise decides retry versus dead letter."""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from envoi import InvalidJobDataError, Retry, job, metrics
from envoi.cli import app as cli
from envoi.config import Settings
from envoi.errors import ConfigError
from envoi.queue.names import NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE
from envoi.runtime import Envoi, import_job_modules
from envoi.worker import Worker
from tests.api.conftest import ADMIN_TOKEN, Api
from tests.dead_letters.support import row_count, rows, until
from tests.helpers import bull_queue, eventually, job_state

T = TypeVar("T")
SettingsFactory = Callable[..., Settings]
StartWorker = Callable[..., Awaitable[Worker]]
APP = "tests.jobs.app_jobs"


def app_jobs() -> Any:
    """The application module, as ENVOI_JOBS imported it (afresh for each test: see conftest.py)."""
    return sys.modules[APP]


def at_least(items: list[T], count: int) -> list[T]:
    """`items` once there are `count` of them, else an empty list (falsy: keep waiting)."""
    return items if len(items) >= count else []


def envoi_with_app_jobs(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi], **values: Any
) -> Envoi:
    """What `envoi worker` does: import ENVOI_JOBS, then build the runtime, which registers their jobs."""
    settings = make_settings(envoi_jobs=APP, **values)
    assert import_job_modules(settings.envoi_jobs) == [
        "CALL_PARTNER",
        "CHARGE_CARD",
        "GENERATE_INVOICE",
        "PING_PARTNER",
        "PUSH_TO_CRM",
    ]
    return make_envoi(settings)


async def test_a_module_named_in_envoi_jobs_is_run_by_a_real_worker(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi], start_worker: StartWorker
) -> None:
    envoi = envoi_with_app_jobs(make_settings, make_envoi)
    await start_worker(envoi, queues=(NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE))
    completed = metrics.JOBS_COMPLETED.labels(NOTIFICATIONS_QUEUE, "GENERATE_INVOICE")
    before = completed._value.get()

    result = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "GENERATE_INVOICE", {"orderId": "A-1", "amountCents": 4200}
    )
    ping = await envoi.queue.enqueue(WEBHOOKS_QUEUE, "PING_PARTNER", {"anything": ["goes"]})
    assert (result.mode, ping.mode) == ("queued", "queued")

    module = app_jobs()
    [call] = await eventually(lambda: module.calls("GENERATE_INVOICE"), message="the invoice job")
    assert call.payload == module.InvoiceData(orderId="A-1", amountCents=4200), (
        "the handler gets the parsed model"
    )
    assert (call.context.job_id, call.context.attempt, call.context.mode) == (result.job_id, 1, "queued")
    [ping_call] = await eventually(lambda: module.calls("PING_PARTNER"), message="the webhooks-queue job")
    assert ping_call.payload == {"anything": ["goes"]} and ping_call.context.queue == WEBHOOKS_QUEUE
    await eventually(lambda: completed._value.get() == before + 1, message="the completed counter")


async def test_the_model_is_enforced_at_enqueue_from_python(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi]
) -> None:
    envoi = envoi_with_app_jobs(make_settings, make_envoi)
    with pytest.raises(InvalidJobDataError) as caught:
        await envoi.queue.enqueue(
            NOTIFICATIONS_QUEUE, "GENERATE_INVOICE", {"orderId": "A-1", "amountCents": 0}
        )
    assert caught.value.fields == {"amountCents": "Input should be greater than 0"}
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None and sum(counts.values()) == 0, "nothing was enqueued"


async def test_the_model_is_enforced_by_the_http_api_naming_the_field(
    make_api: Callable[..., Awaitable[Api]], api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"envoi_jobs": (APP,)})
    import_job_modules(settings.envoi_jobs)
    api = await make_api(settings)

    bad = await api.client.post("/v1/jobs/GENERATE_INVOICE", json={"orderId": "A-1", "amountCents": "lots"})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {
            "in": "body",
            "path": "amountCents",
            "reason": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]
    missing = await api.client.post("/v1/jobs/GENERATE_INVOICE", json={"amountCents": 1})
    assert [e["path"] for e in missing.json()["errors"]] == ["orderId"]

    good = await api.client.post(
        "/v1/jobs/GENERATE_INVOICE",
        json={"orderId": "A-2", "amountCents": 1},
        headers={"Idempotency-Key": "k1"},
    )
    assert good.status_code == 202, good.text
    job = await bull_queue(api.envoi.queue, NOTIFICATIONS_QUEUE).getJob(good.json()["jobId"])
    assert (job.name, job.data) == ("GENERATE_INVOICE", {"orderId": "A-2", "amountCents": 1})
    again = await api.client.post(
        "/v1/jobs/GENERATE_INVOICE",
        json={"orderId": "A-2", "amountCents": 1},
        headers={"Idempotency-Key": "k1"},
    )
    assert (again.status_code, again.json()["jobId"]) == (200, good.json()["jobId"])

    webhook = await api.client.post("/v1/jobs/PING_PARTNER", json={"free": "form"})
    assert webhook.status_code == 202
    assert await job_state(api.envoi, WEBHOOKS_QUEUE, webhook.json()["jobId"]) == "waiting", (
        "on its own queue"
    )
    assert (await api.client.post("/v1/jobs/GENERATE_PDF", json={})).status_code == 404

    document = (await api.client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/jobs/{jobName}"]["post"]
    [name] = [p for p in operation["parameters"] if p["name"] == "jobName"]
    assert {"GENERATE_INVOICE", "PING_PARTNER", "SEND_EMAIL"} <= set(name["schema"]["enum"])
    refs = operation["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/InvoiceData"} in refs
    assert document["components"]["schemas"]["InvoiceData"]["required"] == ["orderId", "amountCents"]

    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    page = await api.anonymous.get("/admin", cookies={"envoi_admin": login.cookies["envoi_admin"]})
    assert '<option value="GENERATE_INVOICE">' in page.text, "the dead-letter filter knows the job"


async def test_a_permanent_error_is_dead_lettered_once_without_retries(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi], start_worker: StartWorker
) -> None:
    envoi = envoi_with_app_jobs(make_settings, make_envoi)
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CHARGE_CARD", {})
    [row] = await until(lambda: rows(envoi), message="the dead letter")
    assert (row.job_name, row.job_id, row.attempts_made) == ("CHARGE_CARD", result.job_id, 1)
    assert row.error_message == "card declined (do not honor)"
    assert row.job_options["attempts"] == 5, "four attempts were left, and none was spent"
    assert len(app_jobs().calls("CHARGE_CARD")) == 1
    assert await row_count(envoi) == 1


async def test_a_transient_error_is_retried_with_backoff_then_succeeds(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi], start_worker: StartWorker
) -> None:
    envoi = envoi_with_app_jobs(make_settings, make_envoi)
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PUSH_TO_CRM", {"failures": 2})
    module = app_jobs()
    await eventually(lambda: len(module.calls("PUSH_TO_CRM")) == 3, message="three attempts")
    await until(lambda: _state_is(envoi, result.job_id, "unknown"), message="completed and removed")
    assert [c.context.attempt for c in module.calls("PUSH_TO_CRM")] == [1, 2, 3]
    assert await row_count(envoi) == 0


async def test_retry_after_replaces_the_backoff(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi], start_worker: StartWorker
) -> None:
    """With a 60 s backoff, `Retry(after=0.5)` brings the job back in about half a second."""
    envoi = envoi_with_app_jobs(make_settings, make_envoi, job_backoff_delay_ms=60_000)
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CALL_PARTNER", {"failures": 1, "after": 0.5})
    module = app_jobs()
    first, second = await eventually(
        lambda: at_least(module.calls("CALL_PARTNER"), 2), timeout=15, message="the second attempt"
    )
    assert 0.45 <= second.at - first.at < 5, second.at - first.at
    await until(lambda: _state_is(envoi, result.job_id, "unknown"), message="completed and removed")


async def test_retry_on_the_last_attempt_is_a_dead_letter(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi], start_worker: StartWorker
) -> None:
    envoi = envoi_with_app_jobs(make_settings, make_envoi, job_attempts=2)
    await start_worker(envoi)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CALL_PARTNER", {"failures": 99, "after": 0.1})
    [row] = await until(lambda: rows(envoi), message="the dead letter")
    assert (row.attempts_made, row.error_message) == (2, "Retry in 0.1s: partner rate limit")
    assert len(app_jobs().calls("CALL_PARTNER")) == 2


async def test_without_redis_an_application_job_runs_inline(
    make_settings: SettingsFactory, make_envoi: Callable[..., Envoi]
) -> None:
    envoi = envoi_with_app_jobs(make_settings, make_envoi, queue_enabled=False)
    result = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "GENERATE_INVOICE", {"orderId": "B-7", "amountCents": 5}
    )
    assert (result.mode, result.succeeded, result.result) == ("sync", True, {"invoice": "INV-B-7"})
    failed = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CHARGE_CARD", {})
    assert (failed.mode, failed.succeeded) == ("sync", False)
    [row] = await until(lambda: rows(envoi), message="the inline dead letter")
    assert (row.job_name, row.error_message) == ("CHARGE_CARD", "card declined (do not honor)")


async def _state_is(envoi: Envoi, job_id: str, state: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == state


# --- start-up and declarations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("tests.jobs.no_such_module", "ModuleNotFoundError: No module named 'tests.jobs.no_such_module'"),
        ("tests.jobs.broken_jobs", "RuntimeError: DATABASE_PASSWORD is not set (this second line"),
    ],
)
@pytest.mark.parametrize("how", ["--jobs", "ENVOI_JOBS"])
@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_module_that_fails_to_import_stops_start_up_with_one_line(
    module: str, reason: str, how: str, command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file
    args = [command]
    if how == "--jobs":
        args += ["--jobs", module]
    else:
        monkeypatch.setenv("ENVOI_JOBS", module)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"envoi: Cannot import job module {module!r} (ENVOI_JOBS, --jobs): ")
    assert reason in line


def test_an_invalid_module_path_in_envoi_jobs_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVOI_JOBS", "myapp.jobs,my-app/jobs.py")
    result = CliRunner().invoke(cli, ["api"])
    assert result.exit_code == 2
    assert "Invalid setting ENVOI_JOBS" in result.output and "'my-app/jobs.py'" in result.output


def test_import_job_modules_names_the_module_it_could_not_import() -> None:
    with pytest.raises(ConfigError, match=re.escape("'tests.jobs.nope'")):
        import_job_modules(["tests.jobs.nope"])


class Empty(BaseModel):
    pass


@pytest.mark.parametrize(
    ("name", "queue", "message"),
    [
        ("SEND_EMAIL", NOTIFICATIONS_QUEUE, "one of envoi's own jobs"),
        ("generate invoice", NOTIFICATIONS_QUEUE, "must match"),
        ("", NOTIFICATIONS_QUEUE, "must match"),
        ("GENERATE_PDF", "pdfs", "unknown queue 'pdfs'"),
    ],
)
def test_a_job_that_cannot_be_declared_is_refused_at_import(name: str, queue: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job(name, model=Empty, queue=queue)


def test_one_name_declared_by_two_functions_is_refused() -> None:
    @job("DUPLICATE")
    async def first(data: Any, ctx: Any) -> None: ...

    with pytest.raises(ValueError, match="declared twice"):

        @job("DUPLICATE")
        async def second(data: Any, ctx: Any) -> None: ...


def test_retry_refuses_a_negative_or_infinite_delay() -> None:
    for after in (-1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="finite delay"):
            Retry(after=after)
    assert Retry(after=2.5).after == 2.5
