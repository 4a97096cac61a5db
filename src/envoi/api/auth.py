"""Who may call what: the API key for /v1/*, the admin token (header or page session) for /v1/admin/*.

Missing credentials answer 401, wrong ones 403; every comparison is constant-time (`hmac.compare_digest`).

The admin page keeps a *session* in its cookie, not the token: a random value per sign-in, checked
against `admin_sessions` and revoked at logout (`envoi.api.sessions`). The cookie is HttpOnly and
SameSite=Strict, so no other site's page can send it.

CSRF, for requests authenticated by that cookie only: SameSite=Strict already keeps the cookie off every
cross-site request, so what is left is a same-*site* attacker (a sibling subdomain) or an old browser.
Unsafe methods must therefore also carry the `X-Envoi-CSRF` header (a custom header cannot be set by an HTML
form, and cross-origin scripts need a CORS preflight that this API never grants) and, when the browser sends
`Origin`, it must match the request's own host. Bearer-token calls are not cookie-borne and need neither.

No-token mode (ENVOI_API_KEY or ENVOI_ADMIN_TOKEN unset, `envoi api` on 127.0.0.1 only): nothing
authenticates the caller, so any web page the operator opens could post to the API from the browser. An
unsafe request to an area without a token is refused (403) when the browser says it comes from elsewhere
(`cross_site`). Programs (curl, the SyncClient, a Node service) send neither header and go through.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from pydantic import SecretStr

from envoi.api.sessions import AdminSessions

#: Name of the admin page's cookie.
ADMIN_COOKIE = "envoi_admin"
#: The header the admin page's script adds to every unsafe request.
CSRF_HEADER = "X-Envoi-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The content types an HTML form can send without a CORS preflight.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def token_matches(given: str, expected: SecretStr) -> bool:
    return _same(given, expected.get_secret_value())


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def same_origin(request: Request) -> bool:
    """True when the browser sent no Origin, or one naming this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def cross_site(request: Request) -> bool:
    """Whether a browser says this request was made by another site's page.

    `Sec-Fetch-Site` (every current browser) must be `same-origin` or `none` (typed in, a bookmark);
    `Origin`, when sent, must be this host (`null` is not). A request with neither is a program's, unless
    its body is one an HTML form makes: an old browser posting a form says nothing about where from.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return True
    if not same_origin(request):
        return True
    if fetch_site is None and request.headers.get("origin") is None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        return content_type in _FORM_TYPES
    return False


def _refuse_cross_site(request: Request, variable: str) -> None:
    if request.method not in SAFE_METHODS and cross_site(request):
        raise forbidden(f"Cross-site request refused: {variable} is not set, so only this site may write")


def check_bearer(request: Request, secret: SecretStr | None, *, name: str) -> None:
    """No secret configured means a local-only API (the CLI refuses a public bind): let programs through,
    refuse what another site's page sends."""
    if secret is None:
        _refuse_cross_site(request, name)
        return
    token = bearer_token(request)
    if token is None:
        raise unauthorized(f"Missing bearer token ({name})")
    if not _same(token, secret.get_secret_value()):
        raise forbidden(f"Invalid bearer token ({name})")


async def cookie_session_valid(
    request: Request, admin_token: SecretStr | None, sessions: AdminSessions
) -> bool:
    if admin_token is None:
        return True
    cookie = request.cookies.get(ADMIN_COOKIE)
    return cookie is not None and await sessions.valid(cookie, admin_token)


async def check_admin(request: Request, admin_token: SecretStr | None, sessions: AdminSessions) -> None:
    if admin_token is None:
        _refuse_cross_site(request, "ENVOI_ADMIN_TOKEN")
        return
    token = bearer_token(request)
    if token is not None:
        if not _same(token, admin_token.get_secret_value()):
            raise forbidden("Invalid admin token")
        return
    cookie = request.cookies.get(ADMIN_COOKIE)
    if cookie is None:
        raise unauthorized("Missing admin token")
    if not await sessions.valid(cookie, admin_token):
        raise forbidden("Invalid admin session")
    if request.method not in SAFE_METHODS and (
        request.headers.get(CSRF_HEADER) is None or not same_origin(request)
    ):
        raise forbidden(f"Cookie-authenticated requests need the {CSRF_HEADER} header and a same origin")
