"""The FastAPI application factory: routers, error answers, body limit, admin page, lifespan."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from envoi.api import admin as admin_page
from envoi.api import errors
from envoi.api.middleware import BodyLimitMiddleware, ErrorShieldMiddleware, NulGuardMiddleware
from envoi.api.routes import abandons, admin, flows, inbox, jobs, ops, reminders, webhooks
from envoi.api.routes.jobs import JOB_SCHEMA_DEFS
from envoi.config import load_settings
from envoi.db.migrate import pending_message
from envoi.errors import ConfigError
from envoi.runtime import Envoi

log = logging.getLogger("envoi.api")

DESCRIPTION = """Enqueue notification jobs (email, SMS, WhatsApp, in-app) and read their outcome.

`/v1/*` takes `Authorization: Bearer $ENVOI_API_KEY`; `/v1/admin/*` takes `$ENVOI_ADMIN_TOKEN` (or the
admin page's cookie); the Twilio webhook is authenticated by Twilio's signature. The API enqueues and
reads; workers process the jobs.
"""


async def check_migrated(envoi: Envoi) -> None:
    """Refuse to serve on a database that is behind the code: routes would fail one by one."""
    message = await asyncio.to_thread(pending_message, envoi.settings.database_url)
    if message is not None:
        raise ConfigError(message)


def create_app(envoi: Envoi | None = None) -> FastAPI:
    """`envoi=None` builds one from the environment at start-up and closes it at shutdown."""
    settings = envoi.settings if envoi is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = envoi or Envoi(settings)
        try:
            await check_migrated(runtime)
            app.state.envoi = runtime
            yield
        finally:
            if envoi is None:
                await runtime.close()

    app = FastAPI(title="envoi", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    if envoi is not None:
        app.state.envoi = envoi
    errors.install(app)
    _include_routers(app)
    _document(app)
    # Added last, so outermost: the shield sees every error, the limit runs before any route.
    app.add_middleware(NulGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ErrorShieldMiddleware)
    return app


def _include_routers(app: FastAPI) -> None:
    for module in (ops, jobs, flows, reminders, abandons, inbox, admin, webhooks):
        app.include_router(module.router)
    admin_page.install(app)


def _document(app: FastAPI) -> None:
    """Two corrections to the generated OpenAPI document: the job models the raw-job body refers to are
    added, and FastAPI's default 422 schema is replaced by the shape `envoi.api.errors` answers with."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            text = json.dumps(generate()).replace(
                '"#/components/schemas/HTTPValidationError"', '"#/components/schemas/ValidationProblem"'
            )
            schema = json.loads(text)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(JOB_SCHEMA_DEFS)
            # ValidationProblem is there already: the raw-job route declares it.
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
