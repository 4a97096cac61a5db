"""What the HTTP providers (Twilio, Resend, SendGrid) share: the retry rule for an answer, transport
failures, `Retry-After`, and a bearer credential that never shows in a repr.

    429, 5xx                       TransientDeliveryError, retry_after from the provider's hint
    any other non-2xx              PermanentDeliveryError (400 bad request, 401/403 bad credentials, ...)
    timeouts, refused connections  TransientDeliveryError, code TIMEOUT or CONNECTION

Each provider module reads its own error body and calls `status_error()`: the decision is made here.

`provider_client()` is the one `httpx.AsyncClient` a provider keeps for the life of its `Envoi` (closed
with it, so with the worker): connections kept alive between sends, as many kept as may be open (httpx
keeps 20 by default: a worker running 50 sends at once would close 30 after each), and HTTP/2 where the
provider offers it (negotiated by TLS ALPN on https; plain-http stand-ins speak HTTP/1.1).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
from pydantic import SecretStr

from envoi.db.types import utcnow
from envoi.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

#: Connections to one provider open at once, at most (sends beyond wait for one, within the timeout).
PROVIDER_MAX_CONNECTIONS = 100
#: A kept connection unused this long is closed (providers' load balancers drop idle ones after 60 s+).
PROVIDER_KEEPALIVE_S = 30.0


def provider_client(*, auth: httpx.Auth | tuple[str, str], timeout: float) -> httpx.AsyncClient:
    """The client a provider reuses for every send: keep-alive, HTTP/2-capable (the `h2` package)."""
    return httpx.AsyncClient(
        auth=auth,
        timeout=timeout,
        http2=True,
        limits=httpx.Limits(
            max_connections=PROVIDER_MAX_CONNECTIONS,
            max_keepalive_connections=PROVIDER_MAX_CONNECTIONS,
            keepalive_expiry=PROVIDER_KEEPALIVE_S,
        ),
    )


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def status_error(
    *,
    channel: str,
    message: str,
    status: int,
    code: str | None = None,
    retry_after: float | None = None,
) -> DeliveryError:
    """The error for a non-2xx answer: retried for 429 and 5xx (after `retry_after` when given)."""
    code = code or str(status)
    if is_transient_status(status):
        return TransientDeliveryError(message, channel=channel, code=code, retry_after=retry_after)
    return PermanentDeliveryError(message, channel=channel, code=code)


def transport_error(provider: str, channel: str, exc: httpx.HTTPError) -> TransientDeliveryError:
    """No answer at all (timeout, refused or dropped connection): retried."""
    code = "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else "CONNECTION"
    return TransientDeliveryError(
        f"{provider} unreachable: {type(exc).__name__}: {exc}", channel=channel, code=code
    )


def json_body(response: httpx.Response) -> object:
    """The decoded body, or None when it is not JSON (a proxy's HTML error page)."""
    try:
        return response.json()
    except ValueError:
        return None


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <key>`, added to each request; the key stays a `SecretStr` in between."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(**********)"
