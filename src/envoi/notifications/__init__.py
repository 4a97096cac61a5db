"""Notifications: job models, channels wiring, flows, reminders and the in-app inbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envoi.runtime import Envoi


def install(envoi: Envoi) -> None:
    """Register the notification job handlers on `envoi.registry`."""
