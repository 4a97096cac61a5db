"""The admin web page (`/admin`): server-rendered Jinja2 shells, a small vendored script, no build step.

The page asks for ENVOI_ADMIN_TOKEN once and keeps a random session value in an HttpOnly,
SameSite=Strict cookie, `Secure` when the browser came over https (directly, or through a proxy in
FORWARDED_ALLOW_IPS); the session lives in `admin_sessions` and logout revokes it (`envoi.api.sessions`;
see `envoi.api.auth` for the CSRF rules). Sign-in attempts are throttled per client address (429 with
Retry-After). Everything the page shows comes from the admin API (`/v1/admin/*`), which accepts that cookie.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from envoi.api import auth
from envoi.api.deps import AdminSessionsDep, ProxiesDep, SettingsDep
from envoi.api.proxy import client_address, is_https
from envoi.queue.names import QUEUE_NAMES, JobName
from envoi.webhooks import DELIVER_WEBHOOK, EVENT_TYPES

HERE = Path(__file__).parent
#: The page loads nothing from elsewhere, and no other site may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # "same-origin", not "no-referrer": with no-referrer Chromium sends `Origin: null` on the login POST.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
    )
)
router = APIRouter(prefix="/admin", include_in_schema=False)


def _page(request: Request, name: str, *, status_code: int = 200, **context: object) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("", response_class=HTMLResponse)
async def admin_page(request: Request, settings: SettingsDep, sessions: AdminSessionsDep) -> HTMLResponse:
    if not await auth.cookie_session_valid(request, settings.envoi_admin_token, sessions):
        return _page(request, "login.html", error=None)
    return _page(
        request,
        "dashboard.html",
        queues=QUEUE_NAMES,
        job_names=[name.value for name in JobName] + [DELIVER_WEBHOOK],
        webhook_events=EVENT_TYPES,
        logout_enabled=settings.envoi_admin_token is not None,
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    sessions: AdminSessionsDep,
    proxies: ProxiesDep,
    token: Annotated[str, Form(max_length=1000)],
) -> Response:
    expected = settings.envoi_admin_token
    if not auth.same_origin(request):
        return _page(request, "login.html", status_code=403, error="Cross-site login refused.")
    if expected is None:
        return RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
    # Throttled before the token is compared: past the limit even the right token waits.
    wait = await sessions.throttle(client_address(request, proxies))
    if wait is not None:
        refused = _page(
            request, "login.html", status_code=429, error="Too many sign-in attempts: try again later."
        )
        refused.headers["Retry-After"] = str(math.ceil(wait))
        return refused
    if not auth.token_matches(token.strip(), expected):
        return _page(request, "login.html", status_code=403, error="That is not the admin token.")
    response = RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        auth.ADMIN_COOKIE,
        await sessions.open(expected),
        max_age=settings.admin_session_max_age_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request, proxies),
    )
    return response


@router.post("/logout")
async def logout(request: Request, sessions: AdminSessionsDep, proxies: ProxiesDep) -> Response:
    response = RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
    if auth.same_origin(request):
        cookie = request.cookies.get(auth.ADMIN_COOKIE)
        if cookie is not None:
            await sessions.revoke(cookie)
        response.delete_cookie(
            auth.ADMIN_COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=is_https(request, proxies),
        )
    return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/admin/static", StaticFiles(directory=HERE / "static"), name="admin-static")
