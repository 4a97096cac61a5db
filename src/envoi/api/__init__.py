"""The HTTP API (FastAPI): it enqueues and reads; it never processes jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envoi.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: workers import `envoi.api.alerts` and should not load FastAPI and every route for it.
    if name == "create_app":
        from envoi.api.app import create_app

        return create_app
    raise AttributeError(name)
