"""SMS_PROVIDER=console and WHATSAPP_PROVIDER=console: each message becomes a `.txt` file under OUTBOX_DIR,
beside the console email outbox (`envoi.channels.email_console`); nothing leaves the machine.

A file reads as the message would arrive:

    Channel: sms
    To: +33612345678
    Date: 2026-12-01T10:00:00+00:00
    Message-Id: console-3f2a...

    Your code is 123456

The log line names the file and the masked recipient, never the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from envoi.channels.base import ChannelName, OutgoingText, SendReceipt
from envoi.config import Settings
from envoi.db.types import utcnow
from envoi.errors import TransientDeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.channels.text")


class ConsoleTextChannel:
    """One class for both channels: `name` says which (`ChannelName.SMS` or `ChannelName.WHATSAPP`)."""

    provider = "console"

    def __init__(self, settings: Settings, *, name: ChannelName) -> None:
        self.name = name
        self.outbox = Path(settings.outbox_dir)

    async def send(self, message: OutgoingText) -> SendReceipt:
        # Derived from the ledger's key, as the console email's Message-ID is: a resend is recognisable.
        mid = "console-" + hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:24]
        now = utcnow()
        path = self.outbox / f"{now:%Y%m%dT%H%M%S%fZ}-{self.name}-{mid.removeprefix('console-')[:12]}.txt"
        content = (
            f"Channel: {self.name}\nTo: {message.to}\nDate: {now.isoformat()}\nMessage-Id: {mid}\n\n"
            f"{message.body}\n"
        )
        try:
            await asyncio.to_thread(self._write, path, content)
        except OSError as exc:
            raise TransientDeliveryError(
                f"Could not write to the outbox: {exc}", channel=self.name, code="OUTBOX"
            ) from exc
        log.info(
            "%s to %s written to %s (%s_PROVIDER=console)",
            self.name,
            mask_recipient(message.to),
            path,
            str(self.name).upper(),
        )
        return SendReceipt(provider=self.provider, provider_message_id=mid)

    def _write(self, path: Path, content: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")

    async def aclose(self) -> None:
        return None
