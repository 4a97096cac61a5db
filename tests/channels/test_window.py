"""The one window where a message can go out twice: the server has accepted it, the ledger does not say
SENT yet. A worker that dies inside it leaves the row SENDING; once the lease runs out, a retry sends
again. Measured here, on real sends, from the server's acceptance to the handler's return (after the
UPDATE's commit: an upper bound): the SMTP client's QUIT exchange, then one UPDATE."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from envoi.config import Settings
from envoi.queue.names import JobName
from envoi.runtime import Envoi
from tests.channels.support import context, delivery, email_data
from tests.chaos.support import percentile, report
from tests.fixtures.smtp import SmtpSink

SENDS = 30
#: Far above what it measures (milliseconds): fails if something slow (a retry, a wait) gets in there.
BOUND_S = 2.0


async def test_the_resend_window_is_one_smtp_quit_and_one_update(
    delivery_settings: Settings, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    windows = []
    for i in range(SENDS):
        to = f"window-{i}@example.com"
        data = email_data(to=to, metadata={"idempotencyKey": f"window-{i}"})
        assert (await envoi.registry.run(context(JobName.SEND_EMAIL, data)))["status"] == "sent"
        recorded = time.time()
        row = await delivery(envoi, f"window-{i}")
        assert row is not None and isinstance(row.sent_at, datetime)
        [message] = [m for m in smtp_sink.messages if to in m.rcpt_tos]
        # The ledger never says SENT before the server accepted.
        assert row.sent_at.timestamp() >= message.accepted_at
        windows.append(recorded - message.accepted_at)
    report(
        "resend window (server accepted -> ledger SENT)",
        sends=SENDS,
        p50_ms=percentile(windows, 0.5) * 1000,
        max_ms=max(windows) * 1000,
    )
    assert max(windows) < BOUND_S, windows
