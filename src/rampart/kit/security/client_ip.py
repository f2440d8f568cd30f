"""Who is on the other end of the socket: the client address that rate limits key on.

The socket peer is the client, unless the peer is one of `TRUSTED_PROXIES`: only then is
`X-Forwarded-For` read, walking it from the right and skipping trusted hops, so the first
untrusted address is the client. A header sent by anyone else is ignored, so a client
cannot pick its own bucket. The walk is uvicorn's `ProxyHeadersMiddleware` (the library
that already does it right), configured from our settings instead of uvicorn's defaults;
`rampart api` runs uvicorn with its own proxy handling off, so this is the only place an
address is rewritten.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

UNKNOWN = "unknown"
# A host gets a whole IPv6 /64 (2^64 addresses): bucketing single v6 addresses would let
# one client rotate through unlimited buckets.
IPV6_BUCKET_PREFIX = 64


def parse_trusted_proxies(value: str) -> list[str]:
    """IPs and CIDRs from a comma-separated list; raises ValueError naming a bad entry.

    uvicorn would silently keep a typo as a literal that never matches; we refuse it, and
    refuse "trust everyone" (`*`, `/0`), which would let any client spoof its address.
    """
    entries = [e.strip() for e in value.split(",") if e.strip()]
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR: {entry!r}") from exc
        if network.prefixlen == 0:
            raise ValueError(f"{entry!r} would trust every peer")
    return entries


class TrustedProxyMiddleware:
    """Pure ASGI: sets `scope["client"]` (and scheme) from X-Forwarded-For/-Proto when the
    peer is a trusted proxy; with no trusted proxies the socket peer is left as it is."""

    def __init__(self, app: ASGIApp, trusted_proxies: list[str]) -> None:
        # Imported here: every process validates TRUSTED_PROXIES with this module (config.py),
        # and uvicorn's package loads its multiprocessing supervisors too.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.app: ASGIApp = (
            ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]
            if trusted_proxies
            else app
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def client_ip(scope: Scope) -> str:
    """The client address as resolved by TrustedProxyMiddleware (or the raw peer)."""
    client = scope.get("client")
    return client[0] if client and client[0] else UNKNOWN


def ip_bucket(ip: str) -> str:
    """The rate-limit identity of an address: IPv4 as is, IPv6 by its /64 network."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64] or UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_BUCKET_PREFIX}", strict=False))
    return str(address)
