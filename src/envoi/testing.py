"""Test your app's notifications without Redis or an SMTP server, the way Django's `mail.outbox` works.

    def test_signup_sends_a_code(envoi_outbox):   # pytest_plugins = ["envoi.pytest_plugin"] in conftest.py
        await signup(envoi_outbox.envoi, "jane@example.com")
        [email] = envoi_outbox.emails
        assert email.to == "jane@example.com" and "482913" in email.text

`outbox()` gives the same thing outside pytest. Jobs run inline (QUEUE_ENABLED=false), through the real
handlers, ledger and templates, into recording channels; in-app notifications land in the SQLite
database of the outbox, where the inbox functions read them.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from envoi.channels import Channels
from envoi.channels.base import ChannelName, OutgoingEmail, OutgoingText, SendReceipt
from envoi.channels.inapp import InAppChannel
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.runtime import Envoi

__all__ = ["Outbox", "RecordingChannel", "outbox"]

M = TypeVar("M")


class RecordingChannel(Generic[M]):
    """A channel that keeps what it is given and answers like a provider that accepted it."""

    provider = "outbox"

    def __init__(self, name: ChannelName) -> None:
        self.name = name
        self.messages: list[M] = []

    async def send(self, message: M) -> SendReceipt:
        self.messages.append(message)
        return SendReceipt(
            provider=self.provider, provider_message_id=f"outbox-{self.name}-{len(self.messages)}"
        )

    async def aclose(self) -> None:
        return None


@dataclass
class Outbox:
    envoi: Envoi
    email_channel: RecordingChannel[OutgoingEmail] = field(repr=False)
    sms_channel: RecordingChannel[OutgoingText] = field(repr=False)
    whatsapp_channel: RecordingChannel[OutgoingText] = field(repr=False)

    @property
    def emails(self) -> list[OutgoingEmail]:
        return self.email_channel.messages

    @property
    def sms(self) -> list[OutgoingText]:
        return self.sms_channel.messages

    @property
    def whatsapp(self) -> list[OutgoingText]:
        return self.whatsapp_channel.messages

    def emails_to(self, address: str) -> list[OutgoingEmail]:
        return [email for email in self.emails if email.to.lower() == address.lower()]

    def clear(self) -> None:
        for channel in (self.email_channel, self.sms_channel, self.whatsapp_channel):
            channel.messages.clear()


@asynccontextmanager
async def outbox(directory: Path | None = None, **settings: Any) -> AsyncIterator[Outbox]:
    """An `Envoi` that runs every job inline into recording channels; `settings` override the defaults
    (e.g. `default_locale="en"`). Its SQLite database lives in `directory` (a temporary one if None)."""
    with tempfile.TemporaryDirectory(prefix="envoi-outbox-") as scratch:
        database_url = f"sqlite:///{(directory or Path(scratch)) / 'envoi-outbox.db'}"
        upgrade(database_url)
        config = Settings(_env_file=None, queue_enabled=False, database_url=database_url, **settings)
        email = RecordingChannel[OutgoingEmail](ChannelName.EMAIL)
        sms = RecordingChannel[OutgoingText](ChannelName.SMS)
        whatsapp = RecordingChannel[OutgoingText](ChannelName.WHATSAPP)
        envoi = Envoi(
            config,
            channels=lambda db: Channels(email=email, sms=sms, whatsapp=whatsapp, inapp=InAppChannel(db)),
        )
        try:
            yield Outbox(envoi, email, sms, whatsapp)
        finally:
            await envoi.close()
