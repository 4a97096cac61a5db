"""Notifications: job models, channels wiring, flows, reminders and the in-app inbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envoi.runtime import Envoi


def install(envoi: Envoi) -> None:
    """Register the notification job handlers on `envoi.registry`, over channels built once from the
    settings (closed with the `Envoi`) and the delivery ledger."""
    # Imported here: `envoi.notifications.jobs` must stay importable without the channels' dependencies.
    from envoi.channels import Channels
    from envoi.deliveries import DeliveryLedger
    from envoi.notifications.handlers import NotificationHandlers

    channels = Channels.from_settings(envoi.settings, envoi.db)
    envoi.closers.append(channels.aclose)
    ledger = DeliveryLedger(envoi.db, lease_s=envoi.settings.delivery_lease_s)
    NotificationHandlers(channels, ledger, events=envoi.events).register(envoi.registry)
