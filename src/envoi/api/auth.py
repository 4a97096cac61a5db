"""Who may call what: the API key for /v1/*, the admin token (header or page cookie) for /v1/admin/*.

Missing credentials answer 401, wrong ones 403; every comparison is constant-time (`hmac.compare_digest`).

The admin page keeps a *session value* in its cookie, not the token itself: an HMAC of a fixed label under
the admin token. It is HttpOnly and SameSite=Strict, so no other site's page can send it.

CSRF, for requests authenticated by that cookie only: SameSite=Strict already keeps the cookie off every
cross-site request, so what is left is a same-*site* attacker (a sibling subdomain) or an old browser.
Unsafe methods must therefore also carry the `X-Envoi-CSRF` header (a custom header cannot be set by an HTML
form, and cross-origin scripts need a CORS preflight that this API never grants) and, when the browser sends
`Origin`, it must match the request's own host. Bearer-token calls are not cookie-borne and need neither.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from pydantic import SecretStr

#: Name of the admin page's cookie.
ADMIN_COOKIE = "envoi_admin"
#: The header the admin page's script adds to every unsafe request.
CSRF_HEADER = "X-Envoi-CSRF"
_SESSION_LABEL = b"envoi-admin-session-v1"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


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


def check_bearer(request: Request, secret: SecretStr | None, *, name: str) -> None:
    """No secret configured means a local-only API (the CLI refuses a public bind): let it through."""
    if secret is None:
        return
    token = bearer_token(request)
    if token is None:
        raise unauthorized(f"Missing bearer token ({name})")
    if not _same(token, secret.get_secret_value()):
        raise forbidden(f"Invalid bearer token ({name})")


def session_value(admin_token: SecretStr) -> str:
    """What the admin cookie holds: changing ENVOI_ADMIN_TOKEN logs every page out."""
    return hmac.new(admin_token.get_secret_value().encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def cookie_session_valid(request: Request, admin_token: SecretStr | None) -> bool:
    if admin_token is None:
        return True
    cookie = request.cookies.get(ADMIN_COOKIE)
    return cookie is not None and _same(cookie, session_value(admin_token))


def same_origin(request: Request) -> bool:
    """True when the browser sent no Origin, or one naming this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def check_admin(request: Request, admin_token: SecretStr | None) -> None:
    if admin_token is None:
        return
    token = bearer_token(request)
    if token is not None:
        if not _same(token, admin_token.get_secret_value()):
            raise forbidden("Invalid admin token")
        return
    cookie = request.cookies.get(ADMIN_COOKIE)
    if cookie is None:
        raise unauthorized("Missing admin token")
    if not _same(cookie, session_value(admin_token)):
        raise forbidden("Invalid admin session")
    if request.method not in _SAFE_METHODS and (
        request.headers.get(CSRF_HEADER) is None or not same_origin(request)
    ):
        raise forbidden(f"Cookie-authenticated requests need the {CSRF_HEADER} header and a same origin")
