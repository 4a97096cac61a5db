"""Queue and job names: the wire contract shared with Node BullMQ producers."""

from __future__ import annotations

from enum import StrEnum

NOTIFICATIONS_QUEUE = "notifications"
WEBHOOKS_QUEUE = "webhooks"
QUEUE_NAMES = (NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE)


class JobName(StrEnum):
    SEND_EMAIL = "SEND_EMAIL"
    SEND_SMS = "SEND_SMS"
    SEND_WHATSAPP = "SEND_WHATSAPP"
    CREATE_INAPP_NOTIFICATION = "CREATE_INAPP_NOTIFICATION"
