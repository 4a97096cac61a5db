"""Property-based, over job data a foreign producer writes straight into Redis with bullmq's `Queue.add`
(random Unicode with lone surrogates and line breaks, numbers JSON cannot carry, nesting past every
limit): a real worker keeps consuming (a valid job added after the junk is delivered), a job that fails
is dead-lettered once and after one attempt (bad data is permanent), and every read path still answers.

Bounded (MAX_EXAMPLES) so the file runs in seconds on each database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from bullmq import Queue
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from envoi.cli import app as cli
from envoi.config import EmailProvider, Settings
from envoi.runtime import Envoi
from tests.api.conftest import Api
from tests.dead_letters.support import rows
from tests.helpers import eventually
from tests.hostile import strategies as hostile
from tests.hostile.support import inbox_of, producer

MAX_EXAMPLES = 30
VALID: dict[str, dict[str, Any]] = {
    "SEND_EMAIL": {
        "to": "jane@example.com",
        "subject": "Hello",
        "html": "<p>Hi</p>",
        "attachments": [{"filename": "a.txt", "contentType": "text/plain", "content": "aGk="}],
        "metadata": {"templateKey": "k"},
    },
    "SEND_SMS": {"to": "+33612345678", "message": "Hi", "metadata": {"n": 1}},
    "SEND_WHATSAPP": {"to": "+33612345678", "message": "Hi"},
    "CREATE_INAPP_NOTIFICATION": {"userId": "u-junk", "title": "t", "message": "m", "metadata": {"a": 1}},
}
#: As envoi's own producers set them: a transient error would show as more than one attempt.
OPTIONS = {"attempts": 3, "backoff": {"type": "fixed", "delay": 20}}

jobs = st.sampled_from(sorted(VALID)).flatmap(
    lambda name: st.tuples(st.just(name), st.one_of(hostile.body(VALID[name]), hostile.anything))
)


@dataclass
class Rig:
    api: Api
    queue: Queue
    count: int = 0


@pytest.fixture
def quiet_settings(api_settings: Settings) -> Settings:
    """The console email provider and SMS/WhatsApp off: every valid job succeeds, so a failure is bad data."""
    # Both fields: model_copy runs no validator, and the channels read the resolved list.
    console = EmailProvider.CONSOLE
    return api_settings.model_copy(update={"email_provider": console, "email_providers": [console]})


@pytest.fixture
async def rig(
    make_api: Callable[..., Any], quiet_settings: Settings, start_worker: Any
) -> AsyncIterator[Rig]:
    api: Api = await make_api(quiet_settings)
    await start_worker(api.envoi)
    queue = producer(api.envoi.settings)
    yield Rig(api, queue)
    await queue.close()


async def _terminal(queue: Queue, job_id: str) -> str | None:
    state = str(await queue.getJobState(job_id))
    return state if state in ("completed", "failed") else None


@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(job=jobs)
async def test_worker_survives_any_job_data(rig: Rig, job: tuple[str, Any]) -> None:
    name, data = job
    try:
        junk = await rig.queue.add(name, data, OPTIONS)
    except ValueError:
        reject()  # the producer itself refuses it (NaN, Infinity): nothing reaches Redis
    rig.count += 1
    sentinel = f"sentinel-{rig.count}"
    await rig.queue.add(
        "CREATE_INAPP_NOTIFICATION", {"userId": sentinel, "title": "ok", "message": "m"}, OPTIONS
    )
    envoi = rig.api.envoi
    await eventually(lambda: inbox_of(envoi, sentinel), timeout=20, message="the valid job after the junk")
    state = await eventually(lambda: _terminal(rig.queue, junk.id), timeout=20, message="the junk job done")
    if state == "failed":
        dead = await eventually(lambda: rows(envoi, job_id=junk.id), timeout=20, message="its dead letter")
        assert len(dead) == 1
        assert dead[0].attempts_made == 1, dead[0].error_message
        assert dead[0].error_message.startswith(("Invalid data", "Unknown job")), dead[0].error_message
        assert (await rig.api.admin.get(f"/v1/admin/failed-jobs/{dead[0].id}")).status_code == 200
    listed = await rig.api.admin.get("/v1/admin/failed-jobs", params={"limit": 500})
    assert listed.status_code == 200, listed.text[:300]
    inbox = await rig.api.client.get("/v1/users/u-junk/notifications", params={"limit": 100})
    assert inbox.status_code == 200, inbox.text[:300]


async def test_dlq_cli_reads_what_the_fuzzed_worker_dead_lettered(
    make_api: Callable[..., Any], quiet_settings: Settings, start_worker: Any
) -> None:
    """The same junk, many at once, then `envoi dlq list --json` over all of it."""
    api: Api = await make_api(quiet_settings)
    envoi: Envoi = api.envoi
    drawn: list[tuple[str, Any]] = []

    @settings(max_examples=40, database=None, suppress_health_check=list(HealthCheck))
    @given(job=jobs)
    def collect(job: tuple[str, Any]) -> None:
        drawn.append(job)

    collect()
    queue = producer(envoi.settings)
    try:
        ids = []
        for name, data in drawn:
            try:
                ids.append((await queue.add(name, data, OPTIONS)).id)
            except ValueError:
                continue
        await start_worker(envoi)

        async def all_done() -> list[str | None]:
            states = [await _terminal(queue, job_id) for job_id in ids]
            return states if all(states) else []

        states = await eventually(all_done, timeout=30, message="every junk job done")
        failed = [job_id for job_id, state in zip(ids, states, strict=True) if state == "failed"]
        await eventually(lambda: _count(envoi, len(failed)), timeout=30, message="every dead letter")
    finally:
        await queue.close()
    env = {"DATABASE_URL": envoi.settings.database_url, "LOG_LEVEL": "WARNING"}
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["dlq", "list", "--json", "--limit", "500"], env=env
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["items"]) == len(failed)


async def _count(envoi: Envoi, expected: int) -> bool:
    return len(await rows(envoi)) == expected
