"""A dead-lettered SEND_EMAIL (the real handler, a real SMTP server) is delivered once when retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from envoi.config import Settings
from envoi.dead_letters.service import FailedJobNotRetryableError
from envoi.queue import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.dead_letters.support import rows, until
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, job_state


async def test_retried_email_is_delivered_once_the_fault_is_gone(
    make_delivery_settings: Callable[..., Settings], make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(job_backoff_delay_ms=20))
    await start_worker(envoi)
    smtp_sink.fail_next(code=451, times=2, stage="rcpt")
    data = {"to": "jane@example.com", "subject": "Votre rendez-vous", "html": "<p>Demain 10 h</p>"}
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data, attempts=2)
    [row] = await until(lambda: rows(envoi), timeout=15, message="the email's dead letter")
    assert (row.job_name, row.attempts_made, row.status) == ("SEND_EMAIL", 2, "FAILED")
    assert "451" in row.error_message
    assert smtp_sink.messages == []

    service = envoi.dead_letters
    retried = await service.retry(row.id)
    assert retried.result == "queued"
    [message] = await eventually(lambda: smtp_sink.messages, timeout=10, message="the email delivered")
    assert message.rcpt_tos == ["jane@example.com"]
    assert message.message["Subject"] == "Votre rendez-vous"
    [after] = await rows(envoi)
    assert (after.status, after.retried_job_id) == ("RETRIED", retried.row.retried_job_id)
    with pytest.raises(FailedJobNotRetryableError):
        await service.retry(row.id)
    assert retried.row.retried_job_id is not None
    await until(
        lambda: _state_is(envoi, str(retried.row.retried_job_id), "unknown"), message="the retry completed"
    )
    assert len(smtp_sink.messages) == 1


async def _state_is(envoi: Envoi, job_id: str, state: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == state
