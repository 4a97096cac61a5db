"""The HTTP API (FastAPI): it enqueues and reads; it never processes jobs."""

from envoi.api.app import create_app

__all__ = ["create_app"]
