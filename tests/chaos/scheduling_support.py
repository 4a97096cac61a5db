"""What the scheduling chaos tests share: a private redis-server the test can stop and start again on
the same port (with its append-only file, so delayed jobs outlive the outage), and an HTTP client over
the real app on a given `Envoi`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from envoi.api.app import create_app
from envoi.embedded_redis import EmbeddedRedis
from envoi.runtime import Envoi
from tests.api.conftest import API_KEY


class StoppableRedis:
    """A redis-server of the test's own: `stop()` takes it away (clients get connection refused),
    `start()` brings it back on the same port with the data it had (append-only file)."""

    def __init__(self, directory: Path) -> None:
        self.server = EmbeddedRedis(directory, persist=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> StoppableRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@asynccontextmanager
async def api_client(envoi: Envoi) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (routes, middlewares, error answers) over `envoi`, called in-process."""
    transport = httpx.ASGITransport(app=create_app(envoi), raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers) as client:
        yield client
