"""The admin web page (`/admin`): server-rendered Jinja2 shells, a small vendored script, no build step.

The page asks for ENVOI_ADMIN_TOKEN once and keeps a random session value in an HttpOnly,
SameSite=Strict cookie, `Secure` when the browser came over https (directly, or through a proxy in
FORWARDED_ALLOW_IPS); the session lives in `admin_sessions` and logout revokes it (`envoi.api.sessions`;
see `envoi.api.auth` for the CSRF rules). Sign-in attempts are throttled per client address (429 with
Retry-After). Everything the page shows comes from the admin API (`/v1/admin/*`), which accepts that cookie.

`/admin/templates` previews every message in every locale with sample data: subject and text on the page,
the HTML in a sandboxed iframe whose document (`/admin/templates/preview/...`) has a CSP of its own
(no script, nothing loaded but images, no form, framed by this origin only). An email's HTML needs its
inline styles, which the page's own CSP rightly refuses; an `srcdoc` iframe would inherit that CSP.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from envoi.api import auth
from envoi.api.deps import AdminSessionsDep, EnvoiDep, ProxiesDep, SettingsDep
from envoi.api.proxy import client_address, is_https
from envoi.api.routes.jobs import known_jobs
from envoi.config import LOCALES
from envoi.errors import TemplateError
from envoi.notifications.previews import BY_NAME, MESSAGES, Preview, preview
from envoi.queue.inspect import LISTED_STATES
from envoi.queue.names import QUEUE_NAMES
from envoi.webhooks import EVENT_TYPES

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
#: An email's HTML, framed by the templates page: inline styles and images only, no script, no form,
#: a unique origin (`sandbox`), and only this origin may frame it.
PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Locale = Annotated[str, Query(pattern="^(" + "|".join(LOCALES) + ")$")]

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
async def admin_page(
    request: Request, settings: SettingsDep, sessions: AdminSessionsDep, envoi: EnvoiDep
) -> HTMLResponse:
    if not await auth.cookie_session_valid(request, settings.envoi_admin_token, sessions):
        return _page(request, "login.html", error=None)
    return _page(
        request,
        "dashboard.html",
        queues=QUEUE_NAMES,
        # envoi's jobs and the application's (`@job`), for the dead-letter filter.
        job_names=list(known_jobs(envoi.registry)),
        webhook_events=EVENT_TYPES,
        job_states=LISTED_STATES,
        logout_enabled=settings.envoi_admin_token is not None,
    )


@router.get("/templates", response_class=HTMLResponse)
async def templates_page(
    request: Request,
    settings: SettingsDep,
    sessions: AdminSessionsDep,
    envoi: EnvoiDep,
    message: Annotated[str, Query(max_length=100)] = MESSAGES[0].name,
    locale: Locale | None = None,
) -> HTMLResponse:
    """Every message in every locale; the chosen one rendered with sample data and the brand settings."""
    if not await auth.cookie_session_valid(request, settings.envoi_admin_token, sessions):
        return _page(request, "login.html", error=None)
    chosen_locale = locale or settings.default_locale
    if message not in BY_NAME:
        return _page(
            request,
            "previews.html",
            status_code=404,
            **_previews(message, chosen_locale, None, "No such message."),
        )
    result: Preview | None = None
    error = None
    try:
        result = preview(envoi.notifications.renderer, settings, message, chosen_locale)
    except TemplateError as exc:
        error = str(exc)
    return _page(request, "previews.html", **_previews(message, chosen_locale, result, error))


def _previews(message: str, locale: str, result: Preview | None, error: str | None) -> dict[str, Any]:
    return {
        "messages": MESSAGES,
        "locales": LOCALES,
        "message": message,
        "locale": locale,
        "preview": result,
        "error": error,
    }


@router.get("/templates/preview/{locale}/{message}.html", response_class=HTMLResponse)
async def html_preview(
    request: Request,
    settings: SettingsDep,
    sessions: AdminSessionsDep,
    envoi: EnvoiDep,
    locale: str,
    message: str,
) -> HTMLResponse:
    """One email's HTML alone, for the templates page's sandboxed iframe."""
    await auth.check_admin(request, settings.envoi_admin_token, sessions)
    if message not in BY_NAME or BY_NAME[message].kind != "email" or locale not in LOCALES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such email")
    try:
        result = preview(envoi.notifications.renderer, settings, message, locale)
    except TemplateError as exc:
        return HTMLResponse(str(exc), status_code=500, headers=PREVIEW_HEADERS, media_type="text/plain")
    return HTMLResponse(result.html or "", headers=PREVIEW_HEADERS)


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
