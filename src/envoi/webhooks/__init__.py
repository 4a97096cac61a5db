"""Outbound webhooks: envoi's events POSTed to the caller's endpoints, signed per Standard Webhooks.

For receivers: `envoi.webhooks.verify(body, headers, secret)` checks a request and returns its JSON
(raises `WebhookVerificationError`). For operators: endpoints are managed through the admin API, the
admin page and `envoi webhooks`. Inside envoi: `envoi.runtime` registers the `DELIVER_WEBHOOK` handler
and subscribes the publisher to `Envoi.events` (`envoi.events`, the bus). See docs/webhooks.md.

- `signing`: sign and verify (the spec's scheme);
- `service`: endpoints, attempts, replay, test, `publish`;
- `delivery`: the `DELIVER_WEBHOOK` handler;
- `safety`: which URLs and addresses may be called (SSRF);
- `jobs`: the job's data and options.
"""

from __future__ import annotations

from envoi.errors import WebhookVerificationError
from envoi.events import EVENT_TYPES, TEST_EVENT, EventBus, EventType
from envoi.webhooks.jobs import DELIVER_WEBHOOK
from envoi.webhooks.service import WebhookEndpointService
from envoi.webhooks.signing import new_secret, sign, signature_header, verify

__all__ = [
    "DELIVER_WEBHOOK",
    "EVENT_TYPES",
    "TEST_EVENT",
    "EventBus",
    "EventType",
    "WebhookEndpointService",
    "WebhookVerificationError",
    "new_secret",
    "sign",
    "signature_header",
    "verify",
]
