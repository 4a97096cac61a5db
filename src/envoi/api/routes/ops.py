"""Operations: liveness, readiness, Prometheus metrics. Unauthenticated, as probes and scrapers expect."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from envoi.api import gauges
from envoi.api.deps import EnvoiDep
from envoi.api.schemas import Health, Readiness
from envoi.db.migrate import pending_message
from envoi.errors import QueueUnavailableError
from envoi.runtime import Envoi

log = logging.getLogger("envoi.api")
router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (it does not look at Redis or the database)."""
    return Health(status="ok")


async def _database_state(envoi: Envoi) -> str | None:
    """None when reachable and migrated; else why not (without the URL, which may hold a password)."""
    try:
        return await asyncio.to_thread(
            pending_message, envoi.settings.database_url, schema=envoi.settings.database_schema
        )
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


async def _redis_state(envoi: Envoi) -> str:
    if not envoi.queue.enabled:
        return "disabled: QUEUE_ENABLED=false, jobs run synchronously (fallback mode)"
    try:
        await envoi.queue.ping()
    except QueueUnavailableError as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "circuit open"
        return f"unreachable ({cause}): jobs run synchronously (fallback mode)"
    return "ok"


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Database unreachable or not migrated"}},
)
async def readyz(envoi: EnvoiDep) -> JSONResponse:
    """Ready when the database answers at the head migration. A Redis that is down is reported, not
    fatal: enqueue then runs jobs inline (fallback mode)."""
    database = await _database_state(envoi)
    redis = await _redis_state(envoi)
    body = Readiness(
        status="ready" if database is None else "not ready",
        database=database or "ok",
        redis=redis,
        fallback_active=redis != "ok",
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if database is None else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(envoi: EnvoiDep) -> Response:
    """Prometheus text format: envoi's counters and histograms, and gauges computed now."""
    try:
        await gauges.refresh(envoi)
    except Exception:
        # A scrape must still show the counters when the database or Redis is away.
        log.warning("Could not compute the queue and dead-letter gauges", exc_info=True)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
