"""Recipients stay masked in the logs of envoi's processes, whoever writes the line: a provider's refusal
quoting the address (an SMTP 550 at RCPT), logged by envoi, by bullmq or in a traceback."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from envoi.config import Settings
from envoi.masking import MaskingFilter
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually, job_state, process_env

ADDRESS = "jane.doe@example.com"
PHONE = "+33612345678"


async def test_a_refusal_quoting_the_address_is_masked_in_the_worker_log(
    delivery_settings: Settings,
    make_envoi: Callable[..., Envoi],
    smtp_sink: SmtpSink,
    processes: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    smtp_sink.fail_next(code=550, text=f"5.1.1 <{ADDRESS}>: Recipient address rejected ({PHONE})")
    env = process_env(
        delivery_settings,
        EMAIL_PROVIDER="smtp",
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=str(smtp_sink.port),
        SMTP_SECURITY="none",
        EMAIL_FROM="envoi <no-reply@envoi.test>",
        LOG_LEVEL="DEBUG",
    )
    worker = processes([sys.executable, "-m", "envoi", "worker"], env=env, cwd=tmp_path)
    envoi = make_envoi(delivery_settings)
    job = {"to": ADDRESS, "subject": "Hi", "html": "<p>Hi</p>"}
    added = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", job, job_id="refused-1")

    async def failed() -> bool:
        assert worker.poll() is None, "the worker exited"
        return await job_state(envoi, NOTIFICATIONS_QUEUE, added.job_id) == "failed"

    await eventually(failed, timeout=30, message="the refused email failed for good")
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=30)[0]
    assert smtp_sink.refusals == [("rcpt", 550)]
    assert "Recipient address rejected" in output, output[-3000:]  # the refusal was logged...
    assert ADDRESS not in output and PHONE not in output, output[-3000:]  # ...masked
    assert "j***@example.com" in output


def test_the_filter_masks_arguments_exceptions_and_tracebacks() -> None:
    handler_records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(self.format(record))

    logger = logging.getLogger("envoi.tests.masking")
    logger.propagate = False
    handler = Keep()
    handler.addFilter(MaskingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("to %s: %s", ADDRESS, ValueError(f"refused {PHONE}"))
        logger.warning("dict %(to)s", {"to": ADDRESS})
        logger.warning(f"inline {ADDRESS}")
        try:
            raise RuntimeError(f"550 <{ADDRESS}>")
        except RuntimeError:
            logger.exception("send failed")
        logger.warning("%d attempts, code %s", 3, 550)
    finally:
        logger.removeHandler(handler)
    text = "\n".join(handler_records)
    assert ADDRESS not in text and PHONE not in text, text
    assert text.count("j***@example.com") == 4, text
    assert "Traceback" in text and "RuntimeError: 550 <j***@example.com>" in text
    assert "3 attempts, code 550" in text
