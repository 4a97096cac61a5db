"""Pure ASGI middlewares: the Host allow-list, request body limits (size and nesting), NUL in the path
or query, and a last-resort 500 that never shows a stack trace.

They are plain ASGI (not `BaseHTTPMiddleware`) so that they see the raw byte stream: a client that sends
no Content-Length, or a false one, is still cut off at the limit.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envoi.validation import MAX_BODY_DEPTH, NUL, NUL_REASON, json_depth_exceeds

log = logging.getLogger("envoi.api")


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


#: Routes probes and scrapers call by address (a pod IP, a load balancer's health check): read-only,
#: nothing a rebinding attacker wants, so the Host check lets them through.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def host_name(header: str) -> str:
    """`Example.COM:8000` -> `example.com`; `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class HostGuardMiddleware:
    """400 for a request whose `Host` is not in ENVOI_ALLOWED_HOSTS (in every mode, token or not).

    A DNS-rebinding page gets the victim's browser to send its requests to 127.0.0.1 under the
    attacker's own name: `Host: evil.example`. Refusing names envoi does not answer to stops that, the
    way Django's ALLOWED_HOSTS does. 400, as Django and Starlette's TrustedHostMiddleware answer (421 is
    for an HTTP/2 connection reused for another origin, which this is not).
    """

    def __init__(self, app: ASGIApp, *, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.allowed and scope.get("path") not in PROBE_PATHS:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.allowed:
                await _send_json(send, 400, {"detail": "Invalid Host header: not in ENVOI_ALLOWED_HOSTS"})
                return
        await self.app(scope, receive, send)


def _json_body(scope: Scope) -> bool:
    """FastAPI parses a body as JSON when it says so, and when it names no content type at all."""
    content_type = dict(scope["headers"]).get(b"content-type")
    return content_type is None or b"json" in content_type.lower()


class BodyLimitMiddleware:
    """413 when the body is over `max_bytes`, by Content-Length or by the bytes actually received; 422
    when a JSON body nests more than `max_depth` levels.

    The body (at most `max_bytes`, 256 KiB by default) is read before the app runs and replayed to it,
    so a rejected request never reaches a route: nothing is enqueued for it. The nesting is measured on
    the bytes, before any parser runs: Python's JSON parser recurses once per level (RecursionError near
    1000, which FastAPI answers 400) and pydantic refuses to serialize past 255 (a 500, with a traceback
    the size of the body); neither gets a body that deep.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int = MAX_BODY_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body: nothing to answer.
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _json_body(scope) and json_depth_exceeds(body, self.max_depth):
            reason = f"must not nest more than {self.max_depth} levels"
            error = {"in": "body", "path": "(root)", "reason": reason}
            await _send_json(send, 422, {"detail": "Invalid request", "errors": [error]})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(send, 413, {"detail": f"Request body larger than {self.max_bytes} bytes"})


class NulGuardMiddleware:
    """422 for a NUL (U+0000) in the path or the query string, naming where it is.

    Bodies are checked field by field by the models (`envoi.validation.CleanInput`); path and query
    parameters are checked here, once for every route, rather than by a pattern on each parameter.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            errors = self._errors(scope)
            if errors:
                await _send_json(send, 422, {"detail": "Invalid request", "errors": errors})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _errors(scope: Scope) -> list[dict[str, str]]:
        errors = []
        if NUL in unquote(scope.get("raw_path", b"").decode("latin-1")) or NUL in scope.get("path", ""):
            errors.append(
                {"in": "path", "path": scope.get("path", "").replace(NUL, "\\0"), "reason": NUL_REASON}
            )
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if NUL in name or NUL in value:
                errors.append({"in": "query", "path": name.replace(NUL, "\\0"), "reason": NUL_REASON})
        return errors


class ErrorShieldMiddleware:
    """Any exception a route lets out becomes a generic 500: logged here, never shown to the caller."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("Unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send_json(send, 500, {"detail": "Internal server error"})
