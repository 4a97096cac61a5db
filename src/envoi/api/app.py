"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from envoi.runtime import Envoi


def create_app(envoi: Envoi | None = None) -> FastAPI:
    """`envoi=None` builds one from the environment at start-up and closes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = envoi is None
        app.state.envoi = envoi or Envoi()
        try:
            yield
        finally:
            if owned:
                await app.state.envoi.close()

    app = FastAPI(title="envoi", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
