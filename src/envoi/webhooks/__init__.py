"""Outbound webhooks: envoi's events POSTed to the caller's endpoints, signed per Standard Webhooks.

For receivers: `envoi.webhooks.verify(body, headers, secret)` checks a request and returns its JSON
(raises `WebhookVerificationError`). For operators: endpoints are managed through the admin API, the
admin page and `envoi webhooks`. Inside envoi: `install` registers the `DELIVER_WEBHOOK` handler and
subscribes the publisher to `Envoi.events`. See docs/webhooks.md.

- `signing`: sign and verify (the spec's scheme);
- `events`: the event types, their data, the bus envoi emits them on;
- `service`: endpoints, attempts, replay, test, `publish`;
- `delivery`: the `DELIVER_WEBHOOK` handler;
- `safety`: which URLs and addresses may be called (SSRF);
- `jobs`: the job's data and options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envoi.errors import WebhookVerificationError
from envoi.webhooks.delivery import WebhookDelivery
from envoi.webhooks.events import EVENT_TYPES, TEST_EVENT, EventBus, EventType
from envoi.webhooks.jobs import DELIVER_WEBHOOK
from envoi.webhooks.safety import webhook_client
from envoi.webhooks.service import WebhookEndpointService
from envoi.webhooks.signing import new_secret, sign, signature_header, verify

if TYPE_CHECKING:
    from envoi.runtime import Envoi

__all__ = [
    "DELIVER_WEBHOOK",
    "EVENT_TYPES",
    "TEST_EVENT",
    "EventBus",
    "EventType",
    "WebhookEndpointService",
    "WebhookVerificationError",
    "install",
    "new_secret",
    "sign",
    "signature_header",
    "verify",
]


def install(envoi: Envoi) -> None:
    """Register `DELIVER_WEBHOOK` on `envoi.registry` (over one HTTP client, closed with the `Envoi`),
    and publish what `envoi.events` carries to the endpoints."""
    http = webhook_client(envoi.settings)
    envoi.closers.append(http.aclose)
    WebhookDelivery(db=envoi.db, settings=envoi.settings, http=http).register(envoi.registry)

    async def publish(event_type: str, data: dict[str, Any]) -> object:
        # Built per event: `envoi.queue` does not exist yet while the Envoi installs its parts.
        service = WebhookEndpointService(db=envoi.db, queue=envoi.queue, settings=envoi.settings)
        return await service.publish(event_type, data)

    envoi.events.subscribe(publish)
