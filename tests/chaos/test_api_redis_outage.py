"""Chaos (3): Redis unreachable for the API, then back.

A private redis-server with its append-only file, stopped under a running API and started again. During
the outage every accepted job either runs inline (delivered before the answer) or is dead-lettered
honestly: a failing job and the delayed reminders are in `failed_jobs`, and the answers say `sync` or
list the reminders as dead-lettered. Once Redis is back the API enqueues through it again, without a
restart, and a worker delivers what was queued before and after: every message once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select

from envoi.config import Settings
from envoi.db.models import FailedJob
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.api.conftest import API_KEY
from tests.api.test_flows import appointment
from tests.chaos.scheduling_support import StoppableRedis, api_client
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually


def email(to: str) -> dict[str, str]:
    return {"to": to, "subject": f"Hello {to}", "html": "<p>Hello</p>"}


async def test_jobs_accepted_while_redis_is_down_run_inline_or_are_dead_lettered_then_redis_is_used_again(
    tmp_path: Path,
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
    smtp_sink: SmtpSink,
) -> None:
    with StoppableRedis(tmp_path / "redis") as redis:
        settings = make_delivery_settings(redis_url=redis.url, envoi_api_key=API_KEY, sms_enabled=False)
        envoi = make_envoi(settings)
        async with api_client(envoi) as api:
            before = await api.post("/v1/jobs/SEND_EMAIL", json=email("before@example.com"))
            assert (before.status_code, before.json()["mode"]) == (202, "queued")

            redis.stop()
            inline = await api.post("/v1/jobs/SEND_EMAIL", json=email("during@example.com"))
            assert (inline.status_code, inline.json()["mode"]) == (202, "sync")
            assert [m.rcpt_tos for m in smtp_sink.messages] == [["during@example.com"]], (
                "sent before the answer"
            )

            smtp_sink.fail_next(code=550, stage="rcpt")
            refused = await api.post("/v1/jobs/SEND_EMAIL", json=email("refused@example.com"))
            assert (refused.status_code, refused.json()["mode"]) == (202, "sync")

            keyed = [
                await api.post(
                    "/v1/jobs/SEND_EMAIL", json=email("keyed@example.com"), headers={"Idempotency-Key": "k-1"}
                )
                for _ in range(2)
            ]
            assert [r.status_code for r in keyed] == [202, 200]
            assert keyed[0].json()["jobId"] == keyed[1].json()["jobId"]

            reminders = await api.put("/v1/appointments/apt-1/reminders", json=appointment("apt-1"))
            assert reminders.status_code == 202
            assert reminders.json()["reminders"] == [] and len(reminders.json()["deadLettered"]) == 2

            redis.start()

            async def redis_used_again() -> bool:
                ready = (await api.get("/readyz")).json()
                return bool(ready["redis"] == "ok" and not ready["fallbackActive"])

            # The breaker tries Redis again after REDIS_BREAKER_COOLDOWN_MS: no restart.
            await eventually(redis_used_again, timeout=10, message="the API back on Redis")
            after = await api.post("/v1/jobs/SEND_EMAIL", json=email("after@example.com"))
            assert (after.status_code, after.json()["mode"]) == (202, "queued")

        await start_worker(make_envoi(settings))
        await eventually(
            lambda: len(smtp_sink.messages) >= 4, timeout=15, message="the queued jobs delivered by a worker"
        )
        assert Counter(m.rcpt_tos[0] for m in smtp_sink.messages) == {
            "before@example.com": 1,  # queued before the outage, kept in Redis's append-only file
            "during@example.com": 1,
            "keyed@example.com": 1,
            "after@example.com": 1,
        }
        async with envoi.db.session() as session:
            dead = (await session.scalars(select(FailedJob).order_by(FailedJob.id))).all()
        assert [(row.job_name, row.job_data["to"]) for row in dead] == [
            ("SEND_EMAIL", "refused@example.com"),
            ("SEND_EMAIL", "jane@example.com"),
            ("SEND_EMAIL", "jane@example.com"),
        ]
        assert "550" in dead[0].error_message
        assert {row.error_message for row in dead[1:]} == {"Queue unavailable: delayed job not scheduled"}
