"""What a request says about itself, believed only from a trusted proxy (FORWARDED_ALLOW_IPS).

`envoi api` runs uvicorn without proxy headers, so `request.client` is the TCP peer and `request.url`
the scheme of that hop. Behind a TLS-terminating proxy the peer is the proxy: its `X-Forwarded-Proto`
and `X-Forwarded-For` say what the browser used and who it is, and are believed when the peer is one
of FORWARDED_ALLOW_IPS (default 127.0.0.1, a proxy on the same machine). Anyone else could write them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """`"10.0.0.1" in proxies`: addresses and networks from FORWARDED_ALLOW_IPS (`*`: every peer)."""

    def __init__(self, entries: Iterable[str]) -> None:
        entries = list(entries)
        self.everyone = "*" in entries
        self.networks: list[Network] = [
            ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"
        ]

    def __contains__(self, address: object) -> bool:
        if self.everyone:
            return True
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def is_https(request: Request, proxies: TrustedProxies) -> bool:
    """The browser's side of the connection was https: this hop, or a trusted proxy's first hop."""
    if request.url.scheme == "https":
        return True
    if _peer(request) not in proxies:
        return False
    forwarded = request.headers.get("x-forwarded-proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def client_address(request: Request, proxies: TrustedProxies) -> str:
    """Who is calling: the peer, or behind trusted proxies the nearest address in X-Forwarded-For that is
    not itself a trusted proxy (the entries left of it could have been written by the client)."""
    address = _peer(request)
    if address not in proxies:
        return address or "unknown"
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in proxies:
            return hop[:64]
    return (hops[0] if hops else address)[:64] or "unknown"
