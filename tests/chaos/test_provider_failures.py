"""(5) Providers that refuse, then accept: SMTP 421 then 250; Twilio 503, then 429 with Retry-After, then
201. Each message is delivered once, by a real worker process, after the waits the providers asked for."""

from __future__ import annotations

import time

from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from tests.chaos.conftest import Stage
from tests.chaos.support import dead_letter_count, drained, enqueue_emails, ledger_statuses, received
from tests.helpers import eventually

RETRY_AFTER_S = 2


async def test_smtp_421_then_250_and_twilio_503_then_429_deliver_once(stage: Stage) -> None:
    envoi = stage.envoi()
    stage.smtp.fail_next(code=421, times=1, stage="mail", text="Service not available, closing channel")
    stage.twilio.fail_next(status=503, times=1)
    stage.twilio.fail_next(
        status=429, times=1, retry_after=RETRY_AFTER_S, code=20429, message="Too Many Requests"
    )
    stage.worker()
    started = time.monotonic()
    await enqueue_emails(envoi, ["jeanne@example.com"])
    sms = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, JobName.SEND_SMS, {"to": "+33612345678", "message": "Rappel : RDV demain 10h"}
    )
    assert sms.mode == "queued"
    await eventually(
        lambda: stage.smtp.messages and stage.twilio.messages, timeout=60, message="both delivered"
    )
    elapsed = time.monotonic() - started
    await eventually(lambda: drained(envoi), timeout=20, message="the queue drained")
    assert received(stage.smtp) == {"jeanne@example.com": 1}
    assert stage.smtp.refusals == [("mail", 421)]
    assert [status for status, _ in stage.twilio.requests] == [503, 429, 201]
    assert len(stage.twilio.messages) == 1
    # The job's own backoff is 100 ms, then 200 ms: only Retry-After explains the wait.
    assert elapsed >= RETRY_AFTER_S
    assert await ledger_statuses(envoi) == {"SENT": 2}
    assert await dead_letter_count(envoi) == 0
