"""The admin web page (`/admin`): server-rendered Jinja2 shells, a small vendored script, no build step.

The page asks for ENVOI_ADMIN_TOKEN once and keeps a session value derived from it in an HttpOnly,
SameSite=Strict cookie (see `envoi.api.auth` for the CSRF rules). Everything it shows comes from the admin
API (`/v1/admin/*`), which accepts that cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from envoi.api import auth
from envoi.api.deps import SettingsDep
from envoi.queue.inspect import LISTED_STATES
from envoi.queue.names import QUEUE_NAMES, JobName

HERE = Path(__file__).parent
#: How long a page session lasts before the token is asked again.
SESSION_MAX_AGE_S = 12 * 3600
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
async def admin_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    if not auth.cookie_session_valid(request, settings.envoi_admin_token):
        return _page(request, "login.html", error=None)
    return _page(
        request,
        "dashboard.html",
        queues=QUEUE_NAMES,
        job_states=LISTED_STATES,
        job_names=[name.value for name in JobName],
        logout_enabled=settings.envoi_admin_token is not None,
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, settings: SettingsDep, token: Annotated[str, Form(max_length=1000)]
) -> Response:
    expected = settings.envoi_admin_token
    if not auth.same_origin(request):
        return _page(request, "login.html", status_code=403, error="Cross-site login refused.")
    if expected is None:
        return RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
    if not auth.token_matches(token.strip(), expected):
        return _page(request, "login.html", status_code=403, error="That is not the admin token.")
    response = RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        auth.ADMIN_COOKIE,
        auth.session_value(expected),
        max_age=SESSION_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
    if auth.same_origin(request):
        response.delete_cookie(auth.ADMIN_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/admin/static", StaticFiles(directory=HERE / "static"), name="admin-static")
