"""Provider policy through real workers and the stand-ins: a rate limit shared by two worker processes,
a 429's Retry-After honoured by every worker without spending an attempt, failover from a closed SMTP
server to Resend, and no failover on a refused address."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envoi.config import Settings
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import Recorder, email_data, job_delivery, text_data
from tests.fixtures.resend import ResendServer
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import bull_queue, eventually, process_env

ROOT = Path(__file__).resolve().parents[2]
#: Completed jobs kept, so that their `attemptsMade` can be read.
KEEP: dict[str, Any] = {"removeOnComplete": False}


#: The slots are exact on Redis's clock (tests/ratelimit/test_gcra.py); what the stand-in sees also
#: carries each send's own latency (a cold process's first HTTP connection: ~100 ms here), so windows
#: are checked 150 ms shorter than a second.
JITTER_S = 0.15


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def attempts_made(envoi: Envoi, job_ids: list[str]) -> list[int]:
    queue = bull_queue(envoi.queue, NOTIFICATIONS_QUEUE)
    return [int((await queue.getJob(job_id)).attemptsMade) for job_id in job_ids]


async def completed(envoi: Envoi, count: int) -> bool:
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    return counts is not None and counts.get("completed", 0) >= count


@pytest.fixture
def spawn_worker(
    tmp_path: Path, processes: Callable[..., subprocess.Popen[str]]
) -> Callable[[Settings], subprocess.Popen[str]]:
    def spawn(settings: Settings) -> subprocess.Popen[str]:
        token = settings.twilio_auth_token
        env = process_env(
            settings,
            JOB_BACKOFF_DELAY_MS="50",
            EMAIL_PROVIDER="console",
            OUTBOX_DIR=str(tmp_path / "outbox"),
            SMS_ENABLED="true",
            WHATSAPP_ENABLED="false",
            TWILIO_API_BASE_URL=str(settings.twilio_api_base_url),
            TWILIO_ACCOUNT_SID=str(settings.twilio_account_sid),
            TWILIO_AUTH_TOKEN=token.get_secret_value() if token else "",
            TWILIO_PHONE_NUMBER=str(settings.twilio_phone_number),
            API_URL=settings.api_url,
            RATE_LIMITS="twilio=5/s",
        )
        # From tmp_path: no .env file from the repository.
        return processes([sys.executable, "-m", "envoi", "worker"], env=env, cwd=tmp_path)

    return spawn


@pytest.mark.serial  # what the stand-in sees carries the machine's jitter: measured on a quiet machine
async def test_two_worker_processes_share_one_rate_limit(
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Any,
    spawn_worker: Callable[[Settings], subprocess.Popen[str]],
    twilio_server: TwilioServer,
) -> None:
    settings = make_delivery_settings(rate_limits="twilio=5/s")
    envoi: Envoi = make_envoi(settings)
    workers = [spawn_worker(settings), spawn_worker(settings)]
    job_ids = [
        (
            await envoi.queue.enqueue(
                NOTIFICATIONS_QUEUE, JobName.SEND_SMS, text_data(to=f"+3361234{i:04d}"), **KEEP
            )
        ).job_id
        for i in range(20)
    ]
    try:
        await eventually(lambda: completed(envoi, 20), timeout=30, message="20 SMS jobs completed")
    except AssertionError:
        for proc in workers:
            proc.terminate()
            print(proc.communicate(timeout=10)[0])  # the workers' log, for the failure report
        print(await envoi.queue.counts(NOTIFICATIONS_QUEUE), twilio_server.requests[:3])
        raise
    assert all(proc.poll() is None for proc in workers), "both workers still running"
    assert len(twilio_server.messages) == 20
    assert len({m["To"] for m in twilio_server.messages}) == 20  # each delivered once
    times = twilio_server.received_at
    assert times[-1] - times[0] >= 3.5
    assert max_in_any_window(times, 1.0 - JITTER_S) <= 5, [round(t - times[0], 3) for t in times]
    assert await attempts_made(envoi, job_ids) == [1] * 20
    failed = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert failed is not None and failed.get("failed", 0) == 0


async def test_a_429_pauses_the_provider_for_every_worker_without_spending_an_attempt(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, twilio_server: TwilioServer
) -> None:
    first: Envoi = make_envoi(delivery_settings)
    second: Envoi = make_envoi(delivery_settings)
    recorder = Recorder()
    first.recorders.append(recorder)
    second.recorders.append(recorder)
    await start_worker(first)
    await start_worker(second)
    twilio_server.fail_next(status=429, times=1, retry_after=2, code=20429, message="Too Many Requests")
    job_ids = [(await first.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, text_data(), **KEEP)).job_id]
    stats = first.queue.rate_limits.stats
    await eventually(lambda: _paused(stats), message="the 429 paused twilio")
    for i in range(6):
        data = text_data(to=f"+3361234{i:04d}")
        job_ids.append(
            (await second.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, data, **KEEP)).job_id
        )
    await eventually(lambda: completed(first, 7), timeout=15, message="7 SMS jobs completed")
    statuses = [status for status, _ in twilio_server.requests]
    assert statuses == [429] + [201] * 7
    paused_at = twilio_server.received_at[0]
    assert all(t - paused_at >= 1.95 for t in twilio_server.received_at[1:])
    assert await attempts_made(first, job_ids) == [1] * 7
    assert recorder.failures == []


async def test_a_slot_beyond_the_longest_wait_postpones_the_job_without_spending_an_attempt(
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Any,
    start_worker: Any,
    twilio_server: TwilioServer,
) -> None:
    # 2/s with a 0.1 s wait: of four SMS at once, three find their slot too far and are postponed.
    settings = make_delivery_settings(rate_limits="twilio=2/s", rate_limit_max_wait_s=0.1)
    envoi: Envoi = make_envoi(settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi, concurrency=4)
    job_ids = [
        (
            await envoi.queue.enqueue(
                NOTIFICATIONS_QUEUE, JobName.SEND_SMS, text_data(to=f"+3361234{i:04d}"), **KEEP
            )
        ).job_id
        for i in range(4)
    ]
    await eventually(lambda: completed(envoi, 4), timeout=20, message="4 SMS jobs completed")
    assert sorted(to for to in (m["To"] for m in twilio_server.messages)) == [
        f"+3361234{i:04d}" for i in range(4)
    ]
    assert await attempts_made(envoi, job_ids) == [1] * 4
    assert recorder.failures == []
    assert int((await envoi.queue.rate_limits.stats()).get("refused:twilio", 0)) >= 1
    for job_id in job_ids:
        row = await job_delivery(envoi, job_id)
        assert row is not None and row.status == "SENT"


async def _paused(stats: Any) -> bool:
    return bool((await stats()).get("paused:twilio"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failover_settings(
    make_delivery_settings: Callable[..., Settings], resend: ResendServer, **more: Any
) -> Settings:
    return make_delivery_settings(
        email_provider=None,
        email_providers="smtp,resend",
        resend_api_key=resend.api_key,
        resend_api_base_url=resend.base_url,
        email_api_timeout_s=5,
        **more,
    )


async def test_a_closed_smtp_server_fails_over_to_resend_within_the_first_attempt(
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Any,
    start_worker: Any,
    resend_server: ResendServer,
) -> None:
    envoi: Envoi = make_envoi(
        failover_settings(make_delivery_settings, resend_server, smtp_port=_closed_port())
    )
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    results = [
        await envoi.queue.enqueue(
            NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data(to=f"client{i}@example.com"), **KEEP
        )
        for i in range(3)
    ]
    await eventually(lambda: completed(envoi, 3), timeout=20, message="3 emails completed")
    assert sorted(m["to"] if isinstance(m["to"], str) else m["to"][0] for m in resend_server.messages) == [
        f"client{i}@example.com" for i in range(3)
    ]
    assert await attempts_made(envoi, [r.job_id for r in results]) == [1, 1, 1]
    row = await job_delivery(envoi, results[0].job_id)
    assert row is not None and (row.status, row.provider) == ("SENT", "resend")
    assert recorder.failures == []


async def test_a_refused_address_does_not_fail_over_and_is_dead_lettered(
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Any,
    start_worker: Any,
    resend_server: ResendServer,
    smtp_sink: SmtpSink,
) -> None:
    envoi: Envoi = make_envoi(failover_settings(make_delivery_settings, resend_server))
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    smtp_sink.fail_next(code=550, stage="rcpt", text="5.1.1 No such user")
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    [failure] = await eventually(lambda: recorder.failures, timeout=15, message="dead-lettered")
    assert resend_server.requests == []
    assert failure.attempts_made == 1
