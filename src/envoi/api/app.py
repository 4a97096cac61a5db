"""The FastAPI application factory: routers, error answers, body limit, admin page, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from envoi.api import admin as admin_page
from envoi.api import docs, errors
from envoi.api.middleware import (
    BodyLimitMiddleware,
    ErrorShieldMiddleware,
    HostGuardMiddleware,
    NulGuardMiddleware,
)
from envoi.api.routes import (
    abandons,
    admin,
    flows,
    inbox,
    jobs,
    ops,
    queues,
    recipients,
    reminders,
    unsubscribe,
    webhook_endpoints,
    webhooks,
)
from envoi.api.routes.jobs import JOB_PATH, job_schemas, known_jobs
from envoi.api.tracing import TracingMiddleware
from envoi.config import load_settings
from envoi.db.migrate import pending_message
from envoi.errors import ConfigError, QueueUnavailableError
from envoi.queue.jobs import HandlerRegistry
from envoi.runtime import Envoi

log = logging.getLogger("envoi.api")

DESCRIPTION = """Enqueue notification jobs (email, SMS, WhatsApp, in-app) and read their outcome.

`/v1/*` takes `Authorization: Bearer $ENVOI_API_KEY`; `/v1/admin/*` takes `$ENVOI_ADMIN_TOKEN` (or the
admin page's cookie); the Twilio webhook is authenticated by Twilio's signature. The API enqueues and
reads; workers process the jobs.
"""


async def check_migrated(envoi: Envoi) -> None:
    """Refuse to serve on a database that is behind the code: routes would fail one by one."""
    message = await asyncio.to_thread(
        pending_message, envoi.settings.database_url, schema=envoi.settings.database_schema
    )
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
            # Redis down at start is no reason to stop: the fallback runs jobs inline, /readyz says so.
            with contextlib.suppress(QueueUnavailableError):
                await runtime.queue.server.log_warnings()
            app.state.envoi = runtime
            yield
        finally:
            if envoi is None:
                await runtime.close()

    # /docs and /redoc are envoi's own pages over packaged assets (`envoi.api.docs`), not FastAPI's CDN ones.
    app = FastAPI(
        title="envoi",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own spans and logs record the path and query as sent, which may hold an address
        # (`/v1/recipients/{recipient}/…`): envoi's TracingMiddleware records the route template only.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if envoi is not None:
        app.state.envoi = envoi
    errors.install(app)
    _include_routers(app)
    _document(app)
    # Added last, so outermost: the shield sees every error, a foreign Host is refused before the body
    # is read, the body limits run before any route.
    app.add_middleware(NulGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HostGuardMiddleware, allowed=settings.allowed_hosts)
    app.add_middleware(ErrorShieldMiddleware)
    # Outermost: the request's span covers every middleware, and sees the status the client gets.
    app.add_middleware(TracingMiddleware)
    return app


def _include_routers(app: FastAPI) -> None:
    modules = (ops, jobs, flows, reminders, abandons, inbox, admin, queues, webhooks, webhook_endpoints)
    for module in (*modules, recipients, unsubscribe):
        app.include_router(module.router)
    admin_page.install(app)
    docs.install(app)


def _document(app: FastAPI) -> None:
    """Corrections to the generated OpenAPI document: the raw-job route lists every job this API knows
    (envoi's and the application's, read from the runtime's registry) with their models, and FastAPI's
    default 422 schema is replaced by the shape `envoi.api.errors` answers with."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            text = json.dumps(generate()).replace(
                '"#/components/schemas/HTTPValidationError"', '"#/components/schemas/ValidationProblem"'
            )
            schema = json.loads(text)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            runtime: Envoi | None = getattr(app.state, "envoi", None)
            jobs = known_jobs(runtime.registry) if runtime is not None else known_jobs(HandlerRegistry())
            refs, defs = job_schemas(model for model in jobs.values() if model is not None)
            if None in jobs.values():
                refs.append({"type": "object", "description": "The data of a job declared without a model"})
            components.update(defs)
            operation = schema["paths"][f"/v1{JOB_PATH}"]["post"]
            operation["requestBody"]["content"]["application/json"]["schema"] = {"anyOf": refs}
            for parameter in operation["parameters"]:
                if parameter["name"] == "jobName":
                    parameter["schema"]["enum"] = list(jobs)
            # ValidationProblem is there already: the raw-job route declares it.
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
