"""`TracedChannel`: one span per provider call (`send smtp`, `send twilio`…), when tracing is on.

The span names the channel and the provider; the recipient only masked (`envoi.masking`), and never
the subject or the body. Each provider behind a `FailoverChannel` is wrapped on its own, so a failover
shows as two spans, the failed provider's marked with the error's class and masked message.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from envoi import tracing
from envoi.channels.base import Channel, ChannelName, SendReceipt
from envoi.masking import mask_recipient

M = TypeVar("M")


class TracedChannel(Generic[M]):
    def __init__(self, inner: Channel[M]) -> None:
        self.inner = inner
        self.name: ChannelName = inner.name
        self.provider: str = inner.provider

    async def send(self, message: M) -> SendReceipt:
        if not tracing.enabled():
            return await self.inner.send(message)
        with tracing.span(f"send {self.provider}", kind="client", attributes=self._attributes(message)):
            return await self.inner.send(message)

    def _attributes(self, message: Any) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {"envoi.channel": str(self.name), "envoi.provider": self.provider}
        to = getattr(message, "to", None)
        if isinstance(to, str):
            attributes["envoi.recipient"] = mask_recipient(to)
        return attributes

    async def aclose(self) -> None:
        await self.inner.aclose()
