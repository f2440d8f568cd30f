"""httpx for tests, with one TLS context for every client (rampart.kit.tls: httpx builds one
per client, ~20 ms of CPU, which was 9 % of the CPU of the unit and integration tests).
The same calls as httpx's; `verify=` still wins (tests/unit/test_test_support.py keeps
tests on these).

    from tests.support import httpclient
    with httpclient.client(base_url=api, timeout=30) as http: ...
    httpclient.get(url, timeout=5)
"""

from __future__ import annotations

from typing import Any

import httpx

from rampart.kit.tls import certifi_context

TLS = certifi_context()


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(**{"verify": TLS, **kwargs})


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request on a client of its own, like `httpx.request`."""
    verify = kwargs.pop("verify", TLS)
    with httpx.Client(verify=verify) as one:
        return one.request(method, url, **kwargs)
