"""EMAIL_PROVIDER=console: each email becomes a `.eml` file under OUTBOX_DIR; nothing leaves the machine.

Open one with any mail client to see what would have been sent. The log line names the file and the
masked recipient, never the body.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from envoi.channels.base import ChannelName, OutgoingEmail, SendReceipt
from envoi.channels.mime import message_id, render_email
from envoi.config import Settings
from envoi.db.types import utcnow
from envoi.errors import TransientDeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.channels.email")


class ConsoleEmailChannel:
    name = ChannelName.EMAIL
    provider = "console"

    def __init__(self, settings: Settings) -> None:
        self.sender = settings.email_from
        self.reply_to = settings.email_reply_to
        self.outbox = Path(settings.outbox_dir)

    async def send(self, message: OutgoingEmail) -> SendReceipt:
        mail = render_email(message, sender=self.sender, reply_to=self.reply_to)
        mid = message_id(message.idempotency_key)
        # Time first so `ls` lists them in order; the Message-ID's hash keeps two in one instant apart.
        name = f"{utcnow():%Y%m%dT%H%M%S%fZ}-{mid.strip('<>').split('@')[0][:12]}.eml"
        path = self.outbox / name
        try:
            await asyncio.to_thread(self._write, path, mail)
        except OSError as exc:
            raise TransientDeliveryError(
                f"Could not write to the outbox: {exc}", channel=self.name, code="OUTBOX"
            ) from exc
        log.info("Email to %s written to %s (EMAIL_PROVIDER=console)", mask_recipient(message.to), path)
        return SendReceipt(provider=self.provider, provider_message_id=mid)

    def _write(self, path: Path, content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    async def aclose(self) -> None:
        return None
