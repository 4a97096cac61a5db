"""Server-side request forgery: which URLs an endpoint may have, and which addresses envoi connects to.

- The scheme is https; http only with WEBHOOK_ALLOW_HTTP=true.
- Every address the host resolves to must be public: loopback, private, link-local, shared (CGNAT),
  multicast, unspecified and reserved addresses are refused, unless WEBHOOK_ALLOW_PRIVATE=true. Cloud
  metadata addresses (169.254.169.254 and its kin) are refused even then: no receiver lives there.
- Checked when an endpoint is saved (`check_url`), and again on every connection (`GuardedBackend`):
  the backend resolves the name itself, checks each address, and connects to the address it checked,
  so a DNS server answering differently the second time (rebinding) gains nothing. TLS still verifies
  the certificate against the host name (SNI and the Host header are the URL's).
- The HTTP client follows no redirect and reads no proxy from the environment (a proxy would connect
  on envoi's behalf, past the check).
"""

from __future__ import annotations

import asyncio
import socket
import typing
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpcore
import httpx

from envoi.config import Settings
from envoi.errors import EnvoiError

IPAddress = IPv4Address | IPv6Address

#: AWS/GCP/Azure/OpenStack instance metadata, AWS ECS task metadata, Alibaba Cloud, AWS over IPv6.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_REFUSED_KINDS = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
)
ALLOWED_SCHEMES = ("https", "http")
URL_MAX_LENGTH = 2000
USER_AGENT = "envoi-webhooks/0.1"


class UnsafeUrlError(EnvoiError):
    """The URL, or an address its host resolves to, is not one envoi may call; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why envoi must not connect to `address`, or None when it may."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for attribute, kind in _REFUSED_KINDS:
        if getattr(address, attribute):
            return kind
    if not address.is_global:
        return "not a public address"
    return None


def parse_url(url: str, *, allow_http: bool) -> httpx.URL:
    """The URL's syntax and scheme (no network). Raises `UnsafeUrlError`."""
    if len(url) > URL_MAX_LENGTH:
        raise UnsafeUrlError(f"must be at most {URL_MAX_LENGTH} characters")
    if url != url.strip() or any(ch.isspace() for ch in url):
        raise UnsafeUrlError("must not contain spaces")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeUrlError("is not a valid URL") from None
    if parsed.scheme not in ALLOWED_SCHEMES or not parsed.host:
        raise UnsafeUrlError("must be an https:// URL with a host")
    if parsed.scheme == "http" and not allow_http:
        raise UnsafeUrlError("must use https (http needs WEBHOOK_ALLOW_HTTP=true)")
    return parsed


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself). Raises OSError."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        address = ip_address(str(info[4][0]).partition("%")[0])  # drop an IPv6 zone ("fe80::1%eth0")
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """`resolve`, refusing the whole host when any of its addresses is refused (a name that answers
    a public and a private address must not reach the private one on a later lookup)."""
    addresses = await resolve(host, port)
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        kind = refusal(address, allow_private=allow_private)
        if kind is not None:
            literal = host.strip("[]") == str(address)
            raise UnsafeUrlError(
                f"{address} is {kind}" if literal else f"{host} resolves to {address}, {kind}"
            )
    return addresses


async def check_url(url: str, settings: Settings) -> str:
    """Refuse a URL envoi must not call, as `UnsafeUrlError`: its scheme, or an address of its host."""
    parsed = parse_url(url, allow_http=settings.webhook_allow_http)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            await checked_addresses(parsed.host, port, allow_private=settings.webhook_allow_private)
    except (OSError, TimeoutError):
        raise UnsafeUrlError(f"host {parsed.host} does not resolve") from None
    return url


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check in front of every TCP connection."""

    def __init__(self, *, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, allow_private=self.allow_private)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrlError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a `GuardedBackend`. httpx takes no network backend as an argument, so
    the connection pool is rebuilt here with the transport's defaults plus ours."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


def webhook_client(settings: Settings) -> httpx.AsyncClient:
    """The client deliveries share: guarded connections, WEBHOOK_TIMEOUT_S per step, no redirects."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=settings.webhook_allow_private),
        timeout=settings.webhook_timeout_s,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )
