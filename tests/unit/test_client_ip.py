"""Client address: X-Forwarded-For counts only from a trusted proxy, walked from the right."""

from __future__ import annotations

import asyncio

import pytest

from rampart.kit.security.client_ip import (
    TrustedProxyMiddleware,
    client_ip,
    ip_bucket,
    parse_trusted_proxies,
)


def resolve(peer: str, xff: str | None, trusted: str) -> str:
    """Run one request scope through the middleware; the client address the app sees."""
    seen: dict[str, str] = {}

    async def app(scope, receive, send):
        seen["ip"] = client_ip(scope)

    headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers,
             "client": (peer, 51000)}  # fmt: skip
    middleware = TrustedProxyMiddleware(app, parse_trusted_proxies(trusted))
    asyncio.run(middleware(scope, None, None))
    return seen["ip"]


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "client"),
    [
        # No trusted proxies: the socket peer, whatever the header says.
        ("203.0.113.5", "198.51.100.1", "", "203.0.113.5"),
        # A peer that is not a trusted proxy cannot choose its address either.
        ("203.0.113.5", "198.51.100.1", "10.0.0.1", "203.0.113.5"),
        # A trusted proxy: the hop it appended (rightmost) is the client.
        ("10.0.0.1", "198.51.100.1", "10.0.0.1", "198.51.100.1"),
        # What the client wrote on the left is never reached.
        ("10.0.0.1", "6.6.6.6, 198.51.100.1", "10.0.0.1", "198.51.100.1"),
        # Trusted hops (by CIDR) are skipped, right to left.
        ("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.2.3.4", "10.0.0.0/8", "198.51.100.1"),
        ("10.0.0.1", "2001:db8::7, 10.2.3.4", "10.0.0.0/8", "2001:db8::7"),
        # Every hop trusted: the farthest one.
        ("10.0.0.1", "10.9.9.9, 10.2.3.4", "10.0.0.0/8", "10.9.9.9"),
        # A trusted proxy that sent no header: the proxy itself.
        ("10.0.0.1", None, "10.0.0.1", "10.0.0.1"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(peer, xff, trusted, client):
    assert resolve(peer, xff, trusted) == client


@pytest.mark.parametrize("bad", ["*", "0.0.0.0/0", "::/0", "10.0.0.1, proxy.local", "10.0.0/33"])
def test_trusted_proxies_refuse_typos_and_trusting_everyone(bad):
    with pytest.raises(ValueError, match="trust every peer|not an IP"):
        parse_trusted_proxies(bad)


def test_ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4():
    assert ip_bucket("2001:db8:1:2:aaaa::1") == ip_bucket("2001:db8:1:2:bbbb::9")
    assert ip_bucket("2001:db8:1:2::1") != ip_bucket("2001:db8:1:3::1")
    assert ip_bucket("::ffff:203.0.113.5") == "203.0.113.5"
    assert ip_bucket("203.0.113.5") == "203.0.113.5"
