"""`Annotated` dependencies: the runtime, a database session, the services, and the two auth checks.

Every dependency is `async def`, even those that only return an attribute: FastAPI runs a plain `def`
dependency in a worker thread, a thread hop per dependency per request (four on `POST /v1/jobs`), which
cost the queued endpoint more than half its rate (docs/benchmarks.md, "The HTTP endpoint").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.api import auth
from envoi.api.proxy import TrustedProxies
from envoi.api.sessions import AdminSessions
from envoi.config import Settings
from envoi.dead_letters.service import FailedJobService
from envoi.deliveries import DeliveryLedger
from envoi.notifications.idempotency import IdempotencyKeys
from envoi.notifications.service import NotificationsService
from envoi.runtime import Envoi


def _envoi(request: Request) -> Envoi:
    envoi: Envoi = request.app.state.envoi
    return envoi


async def get_envoi(request: Request) -> Envoi:
    return _envoi(request)


EnvoiDep = Annotated[Envoi, Depends(get_envoi)]


async def get_settings(envoi: EnvoiDep) -> Settings:
    return envoi.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(envoi: EnvoiDep) -> AsyncIterator[AsyncSession]:
    async with envoi.db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_idempotency(envoi: EnvoiDep) -> IdempotencyKeys:
    return envoi.idempotency


IdempotencyDep = Annotated[IdempotencyKeys, Depends(get_idempotency)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="A repeated key answers 200 with the first request's jobId and sends nothing more.",
    ),
]


async def get_notifications(envoi: EnvoiDep) -> NotificationsService:
    return envoi.notifications


NotificationsDep = Annotated[NotificationsService, Depends(get_notifications)]


async def get_ledger(envoi: EnvoiDep) -> DeliveryLedger:
    return envoi.ledger


LedgerDep = Annotated[DeliveryLedger, Depends(get_ledger)]


async def get_failed_jobs(envoi: EnvoiDep) -> FailedJobService:
    return envoi.dead_letters


FailedJobsDep = Annotated[FailedJobService, Depends(get_failed_jobs)]


async def get_admin_sessions(envoi: EnvoiDep) -> AdminSessions:
    return AdminSessions(db=envoi.db, settings=envoi.settings)


AdminSessionsDep = Annotated[AdminSessions, Depends(get_admin_sessions)]


async def get_proxies(envoi: EnvoiDep) -> TrustedProxies:
    return TrustedProxies(envoi.settings.forwarded_allow_ips)


ProxiesDep = Annotated[TrustedProxies, Depends(get_proxies)]


# Declared for the OpenAPI document (the "Authorize" button of /docs); `envoi.api.auth` does the checking.
_admin_bearer = HTTPBearer(auto_error=False, scheme_name="adminToken", description="ENVOI_ADMIN_TOKEN")
_admin_cookie = APIKeyCookie(name=auth.ADMIN_COOKIE, auto_error=False, scheme_name="adminCookie")


class _ApiKeyBearer(HTTPBearer):
    """The API key's check as the bearer scheme itself: one dependency per request on the routes every
    producer calls, where a scheme, a settings lookup and the check were three (about 100 us of the
    1 ms a queued `POST /v1/jobs` cost)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        settings = _envoi(request).settings
        auth.check_bearer(request, settings.envoi_api_key, name="ENVOI_API_KEY")


require_api_key = _ApiKeyBearer(auto_error=False, scheme_name="apiKey", description="ENVOI_API_KEY")


async def require_admin(
    request: Request,
    settings: SettingsDep,
    sessions: AdminSessionsDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
    _cookie: Annotated[str | None, Depends(_admin_cookie)],
) -> None:
    await auth.check_admin(request, settings.envoi_admin_token, sessions)


ApiKey = Depends(require_api_key)
Admin = Depends(require_admin)
