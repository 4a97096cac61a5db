"""`TracingMiddleware`: one server span per HTTP request, named after its route (`POST /v1/jobs/{jobName}`).

Plain ASGI, so the span is current in the route's own task: an enqueue there is its child. The span
holds the method, the route template and the status, never the path or the query as sent (either may
hold an address). A W3C `traceparent` header from the caller continues the caller's trace.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envoi import tracing

#: The W3C trace-context headers, the only ones read.
TRACE_HEADERS = (b"traceparent", b"tracestate")


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in TRACE_HEADERS
        }
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with tracing.span(
            method,
            kind="server",
            parent=tracing.extract_headers(headers),
            attributes={"http.request.method": method},
        ) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                _name_after_route(span, method, scope.get("route"), status)


def _name_after_route(span: Any, method: str, route: Any, status: list[int]) -> None:
    """The route is known once the router has matched (`scope["route"]`); unmatched, the method alone."""
    template = getattr(route, "path", None)
    if isinstance(template, str):
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
    if status:
        span.set_attribute("http.response.status_code", status[0])
        if status[0] >= 500:
            tracing.fail(span, RuntimeError(f"HTTP {status[0]}"))
